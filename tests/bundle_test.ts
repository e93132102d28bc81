/**
 * @file `varc bundle` and the esbuild plugin: a bundled model imported in Deno generates exactly what
 * the library does on the same random weights (and its `.d.ts` type-checks a consumer); an app
 * importing a `.var.ts` builds with esbuild and runs; a change to a DSL module the spec imports
 * rebuilds in watch mode; spec diagnostics become esbuild errors at the spec's file:line:column.
 */
import assert from "node:assert/strict";
import { assertDenoChecks } from "./_helpers.ts";
import * as esbuild from "esbuild";
import { join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { main } from "../cli/varc.ts";
import { bundleSpec, type CompiledModel, type CompileEvent, varcPlugin } from "../compiler/esbuild_plugin.ts";
import { compile } from "../compiler/mod.ts";
import { generate, type Generation } from "../runtime/generate.ts";
import { importModel, type ModelModule } from "../runtime/mod.ts";
import { randomCheckpoint, randomModel } from "../runtime/random.ts";

const SPEC = "tests/specs/markov.var.ts";
const VAR_LIB = fileURLToPath(new URL("../compiler/dsl/lib/var.ts", import.meta.url));
const SETTINGS = { labels: [2, 0], cfg: 1.5, topK: 5, topP: 0.9, seed: 11 };

/** Runs the CLI, capturing what it prints. */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    return { code: await main(argv), out: out.join("\n"), err: err.join("\n") };
  } finally {
    [console.log, console.error] = [log, error];
  }
}

/** The library path: compile for js, import, bind the files, generate. */
async function libraryModule(spec: string): Promise<ModelModule> {
  return await importModel((await compile(spec, { target: "js" })).emitted.bundle);
}

function assertSameGeneration(actual: Generation, expected: Generation): void {
  assert.deepEqual(actual.idx, expected.idx, "tokens differ");
  assert.deepEqual(actual.fhat, expected.fhat, "f_hat differs");
  assert.deepEqual(actual.img, expected.img, "images differ");
}

/** The 8-bit mapping of `toPng`: round(clamp(x, 0, 1) · 255). */
function to8bit(x: number): number {
  return Math.round(Math.min(1, Math.max(0, x)) * 255);
}

/** A spec in a fresh folder importing the VAR library and a local DSL module (for watch tests). */
async function writeApp(width: number): Promise<{ dir: string; spec: string; local: string }> {
  const dir = await Deno.makeTempDir({ prefix: "varc_app_" });
  const lib = relative(dir, VAR_LIB).replaceAll("\\", "/");
  const spec = join(dir, "model.var.ts"), local = join(dir, "size.ts");
  await Deno.writeTextFile(local, `export const width = ${width};\n`);
  await Deno.writeTextFile(
    spec,
    `import { varModel } from "${lib}";
import { width } from "./size.ts";

export default varModel({
  name: "app_model",
  depth: 1,
  width,
  heads: 2,
  classes: 3,
  vocab: 16,
  cvae: 4,
  mlpRatio: 2,
  schedule: [1, 2, 3],
  vaeCh: 32,
  vaeChMult: [1, 2],
  vaeResBlocks: 1,
});
`,
  );
  await Deno.writeTextFile(
    join(dir, "app.ts"),
    `import model from "./model.var.ts";
import gpu from "./model.var.ts?target=webgpu";
export const targets = [model.info.target, gpu.info.target];
export default model;
`,
  );
  return { dir, spec, local };
}

Deno.test("varc bundle: the module runs in Deno, generates what the library does, and its .d.ts checks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_bundle_" });
  const r = await cli("bundle", SPEC, "--out", dir);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /bundled markov \(tests\/specs\/markov\.var\.ts\) for js/);
  const bundle = await import(pathToFileURL(join(dir, "model.js")).href) as CompiledModel & { default: CompiledModel };
  assert.equal(bundle.info.target, "js");
  assert.equal(bundle.default.generate, bundle.generate);
  assert.ok(bundle.report.attention.length > 0 && bundle.report.attention.every((a) => a.block !== ""));

  const module = await libraryModule(SPEC);
  const { model, files } = randomModel(module, 7);
  const expected = await generate(model, SETTINGS);

  // Bytes in memory.
  const loaded = await bundle.load({ var: files.var.bytes, vae: files.vae.bytes });
  assertSameGeneration(await bundle.generate(loaded, SETTINGS), expected);

  // URLs, fetched with progress (file: URLs in Deno).
  await Deno.writeFile(join(dir, "var.safetensors"), files.var.bytes);
  await Deno.writeFile(join(dir, "vae.safetensors"), files.vae.bytes);
  const seen: Record<string, number> = {};
  const fetched = await bundle.load(
    { var: pathToFileURL(join(dir, "var.safetensors")), vae: pathToFileURL(join(dir, "vae.safetensors")) },
    { onProgress: (p) => void (seen[p.file] = p.loaded) },
  );
  assert.deepEqual(seen, { var: files.var.bytes.length, vae: files.vae.bytes.length });
  const g = await bundle.generate(fetched, SETTINGS);
  assertSameGeneration(g, expected);

  // RGBA bytes as a canvas takes them.
  const rgba = bundle.toRgba(g.img, 1);
  const [, , h, w] = g.img.shape as number[];
  assert.equal(rgba.width, w), assert.equal(rgba.height, h);
  for (const p of [0, 5, w * h - 1]) {
    for (let c = 0; c < 3; c++) assert.equal(rgba.data[p * 4 + c], to8bit(g.img.data[(3 + c) * w * h + p]!));
    assert.equal(rgba.data[p * 4 + 3], 255);
  }

  // The declarations type-check a consumer (Deno reads them through the module's @ts-self-types).
  await Deno.writeTextFile(
    join(dir, "consumer.ts"),
    `import * as model from "./model.js";
import whole from "./model.js";
const loaded: model.LoadedModel = await model.load({ var: new Uint8Array(0) }, { onProgress: (p) => p.loaded });
const g: model.Generation = await model.generate(loaded, { labels: [0], cfg: 1, topK: 0, topP: 0, seed: 0 });
const image: { width: number; data: Uint8ClampedArray } = model.toRgba(g.img, 0);
const n: number = model.report.nodes + model.guardStats.checks + whole.info.params.length;
console.log(image.width, n, Object.keys(model.entries), await model.fetchBytes("file:///dev/null"));
`,
  );
  await assertDenoChecks(["consumer.ts"], dir);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("varc bundle --target webgpu: the module exports its device class and binds weights", async () => {
  const bundle = await bundleSpec(SPEC, { target: "webgpu" });
  assert.match(bundle.dts, /export declare const Gpu/);
  const m = await importModel(bundle.code) as unknown as CompiledModel;
  assert.equal(m.info.target, "webgpu");
  assert.equal(typeof m.Gpu?.create, "function");
  const files = { var: randomCheckpoint(m, "var", 1), vae: randomCheckpoint(m, "vae", 2) };
  const loaded = await m.load({ var: files.var.bytes, vae: files.vae.bytes }); // the device is made on first run
  assert.equal(loaded.module.info.target, "webgpu");
});

/** (target, cached) of compile events, by target: the plugin compiles the targets concurrently. */
function compiled(events: readonly CompileEvent[]): [string, boolean][] {
  return events.map((e): [string, boolean] => [e.target, e.cached]).sort(([a], [b]) => a.localeCompare(b));
}

Deno.test({
  name: "esbuild plugin: an app importing a .var.ts builds and runs; a DSL module change rebuilds in watch mode",
  async fn() {
    const { dir, spec, local } = await writeApp(32);
    const events: CompileEvent[] = [];
    const builds: { errors: number; at: number }[] = [];
    let onBuild = () => {};
    const ctx = await esbuild.context({
      entryPoints: [join(dir, "app.ts")],
      outfile: join(dir, "app.js"),
      bundle: true,
      format: "esm",
      platform: "neutral",
      logLevel: "silent",
      plugins: [
        varcPlugin({ onCompile: (e) => events.push(e) }),
        {
          name: "count-builds",
          setup(build) {
            build.onEnd((r) => void (builds.push({ errors: r.errors.length, at: performance.now() }), onBuild()));
          },
        },
      ],
    });
    try {
      const nextBuild = () => new Promise<void>((done) => (onBuild = done));
      let built = nextBuild();
      await ctx.watch();
      await built;
      assert.deepEqual(builds.map((b) => b.errors), [0]);
      assert.deepEqual(compiled(events), [["js", false], ["webgpu", false]]);

      const app = await import(`${pathToFileURL(join(dir, "app.js")).href}?v=1`);
      assert.deepEqual(app.targets, ["js", "webgpu"]);
      const model = app.default as CompiledModel;
      const { model: library, files } = randomModel(await libraryModule(spec), 3);
      const loaded = await model.load({ var: files.var.bytes, vae: files.vae.bytes });
      assertSameGeneration(await model.generate(loaded, SETTINGS), await generate(library, SETTINGS));

      // The DSL module the spec imports is a watch file: changing it recompiles both targets.
      built = nextBuild();
      await Deno.writeTextFile(local, "export const width = 64;\n");
      await Promise.race([built, new Promise((_, fail) => setTimeout(() => fail(new Error("no rebuild")), 15_000))]);
      assert.deepEqual(compiled(events.slice(2)), [["js", false], ["webgpu", false]]);
      const rebuilt = await import(`${pathToFileURL(join(dir, "app.js")).href}?v=2`);
      const emb = (m: CompiledModel) => m.info.params.find((p) => p.name === "class_emb.weight")!.shape;
      assert.deepEqual(emb(rebuilt.default), [4, 64]);
    } finally {
      await ctx.dispose();
      await esbuild.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("esbuild plugin: the watch files are the spec and every DSL module it imports", async () => {
  const { dir, spec, local } = await writeApp(32);
  type Load = (args: { path: string }) => Promise<esbuild.OnLoadResult>;
  const loads: Load[] = [], disposers: (() => void)[] = [];
  const stub = {
    onDispose: (fn: () => void) => void disposers.push(fn),
    onResolve() {},
    onLoad: (_: unknown, fn: Load) => void loads.push(fn),
  } as unknown as esbuild.PluginBuild;
  await varcPlugin().setup(stub);
  const result = await loads[0]!({ path: `${spec}?target=js` });
  for (const dispose of disposers) dispose();
  await esbuild.stop();
  const watched = new Set(result.watchFiles);
  for (const f of [spec, local, VAR_LIB, VAR_LIB.replace(/var\.ts$/, "vqvae.ts")]) assert.ok(watched.has(f), f);
  assert.match(String(result.contents), /export const report = /);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("esbuild plugin: a malformed spec is an esbuild error at the spec's file:line:column", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_bad_" });
  const lib = relative(dir, VAR_LIB).replaceAll("\\", "/");
  const spec = join(dir, "bad.var.ts");
  await Deno.writeTextFile(
    spec,
    `import { varModel } from "${lib}";

export default varModel({
  name: "bad",
  width: 100,
  heads: 3,
  depth: 1,
  classes: 2,
  vocab: 4,
  cvae: 2,
  schedule: [1, 2],
});
`,
  );
  await Deno.writeTextFile(join(dir, "app.ts"), `import model from "./bad.var.ts";\nexport default model;\n`);
  await Deno.writeTextFile(
    join(dir, "query.ts"),
    `import model from "./bad.var.ts?target=wasm";\nexport default model;\n`,
  );
  try {
    const build = (entry: string) =>
      esbuild.build({
        entryPoints: [join(dir, entry)],
        bundle: true,
        write: false,
        logLevel: "silent",
        plugins: [varcPlugin()],
      });
    await assert.rejects(build("app.ts"), (e: esbuild.BuildFailure) => {
      assert.equal(e.errors.length, 1, JSON.stringify(e.errors));
      const [err] = e.errors;
      assert.match(err!.text, /Cannot split width 100 into 3 heads.*\[not-divisible\]/);
      assert.equal(err!.pluginName, "varc");
      // esbuild locations: 1-based line, 0-based column, length in bytes.
      const at = err!.location!;
      assert.deepEqual({ file: resolve(at.file), line: at.line, column: at.column }, {
        file: spec,
        line: 6,
        column: 2,
      });
      assert.equal(err!.location?.lineText, "  heads: 3,");
      assert.equal(err!.location?.length, 8);
      assert.ok(err!.notes.some((n) => /divisors of 100/.test(n.text)), JSON.stringify(err!.notes));
      return true;
    });
    await assert.rejects(build("query.ts"), (e: esbuild.BuildFailure) => {
      assert.match(e.errors[0]!.text, /\?target= must be "js" or "webgpu", got "wasm"/);
      return true;
    });
    // The CLI prints the same diagnostic in its own format.
    const r = await cli("bundle", spec, "--out", join(dir, "out"));
    assert.equal(r.code, 1);
    assert.ok(r.err.includes(`${spec}:6:3: error[not-divisible]`), r.err);
  } finally {
    await esbuild.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
