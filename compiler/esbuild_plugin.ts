/**
 * @file esbuild plugin: `import model from "./model.var.ts"` compiles the spec at bundle time. The
 * imported module holds the generated kernels and a small loader API (`load`, `generate`, …; see
 * {@link CompiledModel}); `bundleSpec` (used by `varc bundle`) makes one self-contained ES module of it.
 *
 * ```ts
 * import * as esbuild from "esbuild";
 * import { varcPlugin } from "./compiler/esbuild_plugin.ts";
 *
 * await esbuild.build({
 *   entryPoints: ["app.ts"], bundle: true, format: "esm", outfile: "out/app.js",
 *   plugins: [varcPlugin({ target: "webgpu" })],
 * });
 * await esbuild.stop();
 * ```
 *
 * In the app, `import spec from "./model.var.ts"` (or `"./model.var.ts?target=js"` to pick the target
 * per import). TypeScript itself sees the spec's DSL value there, so cast it:
 * `const model = spec as unknown as CompiledModel`. Compile diagnostics become esbuild errors at the
 * spec's file:line:column; the spec and every DSL module it imports are watch files.
 * @module
 */
import * as esbuild from "esbuild";
import { isAbsolute, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { LoadOptions, RgbaImage, Weights } from "../runtime/app.ts";
import type { GenerateOptions, Generation } from "../runtime/generate.ts";
import type { HostTensor, LoadedModel, ModelModule } from "../runtime/mod.ts";
import { holdEsbuild, runtimeResolver, withEsbuild } from "./backends/bundle.ts";
import { dts } from "./backends/declarations.ts";
import type { Note, SourceSpan } from "./diagnostics.ts";
import { MAX_SPEC_BYTES, readRegularFileSync, trackSpecReads } from "./dsl/mod.ts";
import { compile, type Compiled, CompileError, type CompileReport, type Plugin } from "./mod.ts";
import type { CompileOptions } from "./options.ts";
import { isTargetName, targetChoices, type TargetName, TARGETS } from "./targets.ts";

/** Targets a spec import can be compiled for: the built-in ones (`targets.ts`). */
export type BundleTarget = TargetName;

/** Options of {@link varcPlugin}: the compile options (lowering flags) plus plugin settings. */
export interface VarcPluginOptions extends Partial<Omit<CompileOptions, "target" | "minify">> {
  /** Target of spec imports without a `?target=` query (default "js"). */
  readonly target?: BundleTarget;
  /** Compiler plugins (extra passes or backends). */
  readonly plugins?: readonly Plugin[];
  /** Called after each compile of a spec, with its result or its error. */
  readonly onCompile?: (event: CompileEvent) => void;
}

/** One compile of a spec by the plugin. */
export interface CompileEvent {
  /** The spec path, relative to the working directory when inside it. */
  readonly spec: string;
  readonly target: BundleTarget;
  readonly ms: number;
  /** Whether the result came from the plugin's cache (no watched file changed). */
  readonly cached: boolean;
  readonly compiled?: Compiled;
  readonly error?: unknown;
}

export type { WeightSource } from "../runtime/checkpoint_bytes.ts";
export type { LoadOptions, RgbaImage, Weights } from "../runtime/app.ts";

/**
 * What a compiled spec module exports (the named exports, and the same as its default export):
 * the generated `info` and `entries` (plus `Gpu` on webgpu, `guardStats` on js), the compile
 * `report`, and the loader helpers bundled from `runtime/`.
 */
export interface CompiledModel extends ModelModule {
  /** The compile report: node count, parameters, pass timings, and a row per attention block. */
  readonly report: CompileReport;
  /** Reads the checkpoints (bytes, URLs or Deno file paths, with progress) and binds them to this model. */
  load(weights: Weights, options?: LoadOptions): Promise<LoadedModel>;
  /** `runtime/generate.ts`: next-scale generation with CFG, top-k/top-p, then the decoder. */
  generate(model: LoadedModel, options: GenerateOptions): Promise<Generation>;
  /** Fetches a URL into one buffer, reporting progress as the body streams in. */
  fetchBytes(url: string | URL, onProgress?: (loaded: number, total?: number) => void): Promise<Uint8Array>;
  /** Image `index` of img [B, 3, H, W] in [0, 1] as RGBA bytes, rounded as `toPng` does. */
  toRgba(img: HostTensor, index?: number): RgbaImage;
}

const SPEC_FILTER = /\.var\.ts(\?[^/\\]*)?$/;
const SPEC_NS = "varc-spec";
const MODEL_NS = "varc-model";
/** The loader API every compiled spec module imports as `varc:app`. */
const APP_FILE = fileURLToPath(new URL("../runtime/app.ts", import.meta.url));
const RUNTIME_DIR = fileURLToPath(new URL("../runtime/", import.meta.url));

/** A compile result with the contents of every file it read, to reuse while none changes. */
interface CacheEntry {
  readonly files: ReadonlyMap<string, string | undefined>;
  readonly compiled?: Compiled;
  readonly error?: unknown;
}

/** The esbuild plugin: spec imports (`*.var.ts`, optionally `?target=js|webgpu`) become compiled models. */
export function varcPlugin(options: VarcPluginOptions = {}): esbuild.Plugin {
  const { target: defaultTarget = "js", plugins, onCompile, ...compileOptions } = options;
  checkTarget(defaultTarget, "varcPlugin option target");
  const cache = new Map<string, CacheEntry>();

  async function compiled(file: string, target: BundleTarget): Promise<CacheEntry> {
    const key = `${target}:${file}`;
    const hit = cache.get(key);
    const spec = displayPath(file);
    if (hit && [...hit.files].every(([f, text]) => readText(f) === text)) {
      onCompile?.({ spec, target, ms: 0, cached: true, compiled: hit.compiled, error: hit.error });
      return hit;
    }
    const files = new Map<string, string | undefined>();
    const t0 = performance.now();
    let entry: CacheEntry;
    try {
      // The front end reads the spec and its imports before compile's first await.
      const pending = trackSpecReads(
        () => compile(spec, { ...compileOptions, target, minify: false }, { plugins }),
        (f) => files.set(f, readText(f)),
      );
      entry = { files, compiled: await pending };
    } catch (error) {
      entry = { files, error };
    }
    if (!files.has(file)) files.set(file, readText(file));
    cache.set(key, entry);
    onCompile?.({ spec, target, ms: performance.now() - t0, cached: false, ...entry });
    return entry;
  }

  return {
    name: "varc",
    setup(build) {
      // `compile` bundles with esbuild too, and stops its service when done unless it is held: hold it
      // while this build or context lives, so no compile (ours or the app's) stops the service under it.
      build.onDispose(holdEsbuild());
      const resolveSpec = (specifier: string, resolveDir: string): esbuild.OnResolveResult => {
        const [path, query = ""] = splitQuery(specifier);
        try {
          const target = queryTarget(query, defaultTarget);
          // Paths in namespaces reach source maps: relative to the working directory, not the build machine's root.
          return { path: `${displayPath(resolve(resolveDir, path))}?target=${target}`, namespace: SPEC_NS };
        } catch (e) {
          return { errors: [{ text: (e as Error).message }] };
        }
      };
      build.onResolve({ filter: SPEC_FILTER }, (args) => {
        if (!args.path.startsWith(".") && !isAbsolute(args.path)) return undefined; // bare specifiers: not ours
        return resolveSpec(args.path, args.resolveDir);
      });
      // `bundleSpec`'s entry: a spec whatever its file name.
      build.onResolve({ filter: /^varc-spec:/ }, (args) => resolveSpec(args.path.slice(10), args.resolveDir));
      build.onResolve({ filter: /^varc-model:/ }, (args) => ({ path: args.path.slice(11), namespace: MODEL_NS }));
      build.onResolve({ filter: /^varc:app$/ }, () => ({ path: APP_FILE }));
      runtimeResolver.setup(build); // varc:kernels, varc:exec, … (as in compiler/backends/bundle.ts)

      // The spec module: the loader API around its generated model module.
      build.onLoad({ filter: /.*/, namespace: SPEC_NS }, async (args) => {
        const [path, query = ""] = splitQuery(args.path);
        const target = queryTarget(query, defaultTarget), file = resolve(path);
        const entry = await compiled(file, target);
        const watchFiles = [...entry.files.keys()].filter(watchable);
        if (!entry.compiled) return { errors: messages(entry.error), watchFiles };
        return { contents: wrapper(`${target}:${displayPath(file)}`, entry.compiled), loader: "ts", watchFiles };
      });
      // The generated module itself (TypeScript importing varc:* runtime files).
      build.onLoad({ filter: /.*/, namespace: MODEL_NS }, async (args) => {
        const at = args.path.indexOf(":"); // "<target>:<spec path>", compiled by the spec's onLoad
        const [target, file] = [args.path.slice(0, at) as BundleTarget, resolve(args.path.slice(at + 1))];
        const entry = cache.get(`${target}:${file}`) ?? await compiled(file, target);
        if (!entry.compiled) return { errors: messages(entry.error) };
        return { contents: entry.compiled.emitted.source, loader: "ts", resolveDir: RUNTIME_DIR };
      });
    },
  };
}

/** Options of {@link bundleSpec}. */
export interface BundleSpecOptions extends VarcPluginOptions {
  /** Minify the module (default true). */
  readonly minify?: boolean;
}

/** A self-contained model module: `code` (ES module) and its declarations `dts`. */
export interface SpecBundle {
  readonly code: string;
  readonly dts: string;
  readonly compiled: Compiled;
}

/**
 * One ES module for a spec (generated kernels, runtime and loader API; the exports of
 * {@link CompiledModel}) with its `.d.ts`. Loads in Deno and in browsers. `dtsFile` is the name the
 * module's `@ts-self-types` comment points at (default "model.d.ts"). Throws CompileError on a bad spec.
 */
export async function bundleSpec(
  spec: string,
  options: BundleSpecOptions = {},
  dtsFile = "model.d.ts",
): Promise<SpecBundle> {
  const { minify = true, onCompile, ...pluginOptions } = options;
  let last: CompileEvent | undefined;
  const plugin = varcPlugin({
    ...pluginOptions,
    onCompile: (e) => {
      last = e;
      onCompile?.(e);
    },
  });
  const target = options.target ?? "js";
  const file = JSON.stringify(`varc-spec:${resolve(spec)}`);
  let result: esbuild.BuildResult<{ write: false }>;
  try {
    result = await withEsbuild(() =>
      esbuild.build({
        stdin: { contents: `export * from ${file};\nexport { default } from ${file};\n`, loader: "js" },
        bundle: true,
        format: "esm",
        platform: "neutral",
        target: "es2022",
        write: false,
        minify,
        legalComments: "none",
        banner: { js: `// @ts-self-types="./${dtsFile}"` },
        plugins: [plugin],
        logLevel: "silent",
      })
    );
  } catch (e) {
    if (last?.error instanceof CompileError) throw last.error;
    throw e;
  }
  return { code: result.outputFiles[0]!.text, dts: bundleDts(target), compiled: last!.compiled! };
}

/** The spec module's source: re-exports of the generated module, the report and the loader API. */
function wrapper(modelKey: string, compiled: Compiled): string {
  const model = JSON.stringify(`varc-model:${modelKey}`);
  return `import * as model from ${model};
import * as app from "varc:app";
export * from ${model};
export { fetchBytes, generate, toRgba } from "varc:app";
export const report = ${literal(compiled.report)};
export function load(weights: app.Weights, options?: app.LoadOptions) {
  return app.load(model as never, weights, options);
}
export default { ...model, report, load, generate: app.generate, fetchBytes: app.fetchBytes, toRgba: app.toRgba };
`;
}

/**
 * Declarations of a `bundleSpec` module: the generated module's, the report and the loader API, from
 * the runtime's and compiler's types (`backends/module_exports.ts`, flattened by `deno task dts`).
 */
export function bundleDts(target: BundleTarget): string {
  return dts(TARGETS[target].device ? "deviceBundle" : "hostBundle");
}

/** Compile errors as esbuild messages, located in the spec (esbuild columns and lengths count UTF-8 bytes). */
function messages(e: unknown): esbuild.PartialMessage[] {
  if (!(e instanceof CompileError)) return [{ text: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }];
  return e.diagnostics.map((d) => ({
    id: d.id,
    text: `${d.message} [${d.id}]`,
    location: location(d.span),
    notes: d.notes.map((n: Note) => ({ text: n.message, location: location(n.span) })),
  }));
}

function location(span: SourceSpan | undefined): Partial<esbuild.Location> | null {
  if (!span) return null;
  const start = span.column - 1;
  return {
    file: displayPath(span.file),
    namespace: "file",
    line: span.line,
    column: utf8Length(span.lineText.slice(0, start)),
    length: utf8Length(span.lineText.slice(start, start + span.length)),
    lineText: span.lineText,
  };
}

/** A path relative to the working directory when it is inside it (as esbuild prints paths). */
function displayPath(file: string): string {
  const rel = relative(Deno.cwd(), file);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel.replaceAll("\\", "/") : file;
}

/** A spec file's text for the rebuild check (regular files only, bounded; undefined when unreadable). */
function readText(file: string): string | undefined {
  try {
    const text = readRegularFileSync(file, MAX_SPEC_BYTES);
    return typeof text === "string" ? text : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether esbuild may watch `file`: it reads watched files whole, so only a missing file or a regular one
 * within the spec size limit (a device, a FIFO or a huge file would block it or exhaust its memory).
 */
function watchable(file: string): boolean {
  try {
    const info = Deno.statSync(file);
    return info.isFile && info.size <= MAX_SPEC_BYTES;
  } catch (e) {
    return e instanceof Deno.errors.NotFound;
  }
}

/** "path?query" -> [path, query]; the query is after the last "?". */
function splitQuery(path: string): [string, string?] {
  const at = path.lastIndexOf("?");
  return at < 0 ? [path] : [path.slice(0, at), path.slice(at + 1)];
}

function queryTarget(query: string, fallback: BundleTarget): BundleTarget {
  if (query === "") return fallback;
  const params = new URLSearchParams(query);
  for (const key of params.keys()) {
    if (key !== "target") {
      throw new TypeError(`Unknown query "${key}" on a spec import (only ?target=${Object.keys(TARGETS).join("|")})`);
    }
  }
  return checkTarget(params.get("target") ?? fallback, "?target=");
}

function checkTarget(t: string, what: string): BundleTarget {
  if (!isTargetName(t)) throw new TypeError(`${what} must be ${targetChoices()}, got "${t}"`);
  return t;
}

/** A JS literal of the report (JSON, except that non-finite numbers stay numbers). */
function literal(value: unknown): string {
  return JSON.stringify(value, (_, v) => typeof v === "number" && !Number.isFinite(v) ? `\0${v}` : v)
    .replace(/"\\u0000(-?Infinity|NaN)"/g, "$1");
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}
