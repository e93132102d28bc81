/**
 * @file esbuild: bundles a generated module with the runtime files it imports (`varc:*`). The
 * resolver and the service handling are shared with the esbuild plugin (`compiler/esbuild_plugin.ts`).
 */
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";

/** Runtime files generated code may import, by virtual specifier. */
export const RUNTIME_MODULES: Readonly<Record<string, string>> = {
  "varc:kernels": fileURLToPath(new URL("../../runtime/js/kernels.ts", import.meta.url)),
  "varc:exec": fileURLToPath(new URL("../../runtime/exec.ts", import.meta.url)),
  "varc:lowrank": fileURLToPath(new URL("../../runtime/js/lowrank.ts", import.meta.url)),
  "varc:webgpu": fileURLToPath(new URL("../../runtime/webgpu/kernels.ts", import.meta.url)),
  "varc:webgpu-device": fileURLToPath(new URL("../../runtime/webgpu/device.ts", import.meta.url)),
};

/** Resolves the `varc:*` specifiers of generated code to the runtime files. */
export const runtimeResolver: esbuild.Plugin = {
  name: "varc-runtime",
  setup(build) {
    build.onResolve({ filter: /^varc:/ }, (args) => {
      const path = Object.hasOwn(RUNTIME_MODULES, args.path) ? RUNTIME_MODULES[args.path] : undefined;
      return path ? { path } : { errors: [{ text: `Unknown runtime module "${args.path}"` }] };
    });
  },
};

let holds = 0;
let stopWhenReleased = false;

/**
 * Keeps esbuild's service running until the returned function is called. `withEsbuild` stops the
 * service when its work ends; while a hold is open it defers that stop to the last release. The
 * esbuild plugin holds the service for the life of its build or context, so a spec compiled inside
 * (or beside) that build does not stop the service it runs on.
 */
export function holdEsbuild(): () => void {
  holds++;
  let open = true;
  return () => {
    if (!open) return;
    open = false;
    if (--holds === 0 && stopWhenReleased) {
      stopWhenReleased = false;
      void esbuild.stop();
    }
  };
}

/** Runs `work` with esbuild, then stops its service (a child process), or defers that while it is held. */
export async function withEsbuild<T>(work: () => Promise<T>): Promise<T> {
  const release = holdEsbuild();
  try {
    return await work();
  } finally {
    stopWhenReleased = true;
    release();
  }
}

/** Bundles TypeScript source into one ES module string. */
export async function bundleModule(source: string, options: { minify: boolean }): Promise<string> {
  const result = await withEsbuild(() =>
    esbuild.build({
      stdin: { contents: source, loader: "ts", sourcefile: "model.ts", resolveDir: "." },
      bundle: true,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      write: false,
      minify: options.minify,
      legalComments: "none",
      plugins: [runtimeResolver],
      logLevel: "silent",
    })
  );
  return result.outputFiles[0]!.text;
}
