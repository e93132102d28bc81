/** @file Plugins (esbuild's `{ name, setup }` shape): add passes and backends. */
import type { Backend } from "./backends/backend.ts";
import type { CompileOptions } from "./options.ts";
import type { Pass } from "./pass.ts";

/** A compiler extension. */
export interface Plugin {
  readonly name: string;
  setup(build: PluginBuild): void;
}

/** What `setup` may do. */
export interface PluginBuild {
  readonly options: Readonly<CompileOptions>;
  /** Inserts a pass before or after a named pass; unknown names are an error. */
  addPass(pass: Pass, position: { readonly after: string } | { readonly before: string }): void;
  /** Registers a backend under its name (used by `--target NAME`). */
  addBackend(backend: Backend): void;
}

/** Applies plugins to a pipeline and backend table; returns the extended copies. */
export function applyPlugins(
  plugins: readonly Plugin[],
  options: Readonly<CompileOptions>,
  pipeline: readonly Pass[],
  backends: Readonly<Record<string, Backend>>,
): { pipeline: Pass[]; backends: Record<string, Backend> } {
  const passes = [...pipeline];
  const table = { ...backends };
  for (const plugin of plugins) {
    if (typeof plugin?.name !== "string" || typeof plugin.setup !== "function") {
      throw new TypeError(`Invalid plugin: expected { name: string, setup(build) }, got ${JSON.stringify(plugin)}`);
    }
    plugin.setup({
      options,
      addPass(pass, position) {
        const anchor = "after" in position ? position.after : position.before;
        const i = passes.findIndex((p) => p.name === anchor);
        if (i < 0) {
          throw new TypeError(
            `Plugin "${plugin.name}": no pass named "${anchor}" (passes: ${passes.map((p) => p.name).join(", ")})`,
          );
        }
        if (passes.some((p) => p.name === pass.name)) {
          throw new TypeError(`Plugin "${plugin.name}": a pass named "${pass.name}" already exists`);
        }
        passes.splice("after" in position ? i + 1 : i, 0, pass);
      },
      addBackend(backend) {
        table[backend.name] = backend;
      },
    });
  }
  return { pipeline: passes, backends: table };
}
