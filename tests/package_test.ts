/**
 * @file The package as a library: `deno.json` names it and exports the compiler, runtime and esbuild plugin
 * APIs, imported here by the package's name through its export map (as a workspace using it would), and
 * they compile, bind and generate with the fixture checkpoints. Its npm dependencies are what the code uses:
 * Deno installs every package of the lockfile before running anything, so `deno task demo` downloads them all.
 */
import assert from "node:assert/strict";
import * as root from "@varc/varc";
import * as compiler from "@varc/varc/compiler";
import * as runtime from "@varc/varc/runtime";
import * as plugin from "@varc/varc/esbuild-plugin";
import * as compilerModule from "../compiler/mod.ts";
import * as runtimeModule from "../runtime/mod.ts";
import * as pluginModule from "../compiler/esbuild_plugin.ts";
import { generate as generateModule } from "../runtime/generate.ts";

const FIXTURE = "tests/fixtures/var_tiny_a";

Deno.test("package: deno.json names the package and maps its exports to the API modules", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(config.name, "@varc/varc");
  assert.match(config.version, /^\d+\.\d+\.\d+$/);
  assert.deepEqual(config.exports, {
    ".": "./compiler/mod.ts",
    "./compiler": "./compiler/mod.ts",
    "./runtime": "./runtime/mod.ts",
    "./esbuild-plugin": "./compiler/esbuild_plugin.ts",
  });
  // The names resolve to the very modules of the repository, not copies.
  assert.equal(root.compile, compilerModule.compile);
  assert.equal(compiler.compile, compilerModule.compile);
  assert.equal(compiler.CompileError, compilerModule.CompileError);
  assert.equal(runtime.loadModel, runtimeModule.loadModel);
  assert.equal(runtime.generate, generateModule);
  assert.equal(plugin.varcPlugin, pluginModule.varcPlugin);
  assert.equal(plugin.bundleSpec, pluginModule.bundleSpec);
});

Deno.test("package: the exported APIs compile a spec, load its checkpoints and generate", async () => {
  const compiled = await compiler.compile("examples/var_tiny_a.var.ts");
  const model = await runtime.loadModel(await runtime.importModel(compiled.emitted.bundle), {
    var: `${FIXTURE}/var.safetensors`,
    vae: `${FIXTURE}/vae.safetensors`,
  });
  const g = await runtime.generate(model, { labels: [3], cfg: 1.5, topK: 1, topP: 0, seed: 0 });
  assert.deepEqual(g.img.shape, [1, 3, 256, 256]);

  // The plugin's bundle, loaded from the same files by path, generates the same tokens.
  const bundle = await plugin.bundleSpec("examples/var_tiny_a.var.ts");
  const bundled = await runtime.importModel(bundle.code) as pluginModule.CompiledModel;
  const loaded = await bundled.load({ var: `${FIXTURE}/var.safetensors`, vae: `${FIXTURE}/vae.safetensors` });
  const again = await bundled.generate(loaded, { labels: [3], cfg: 1.5, topK: 1, topP: 0, seed: 0 });
  assert.deepEqual(again.idx, g.idx);

  await assert.rejects(() => compiler.compile("examples/bad.var.ts"), compiler.CompileError);
});

/** npm packages in the lockfile that the demo does not import, and who needs them. */
const NOT_IN_DEMO: Readonly<Record<string, string>> = {
  yaml: "tests/cluster_test.ts reads the Kubernetes manifest",
};

Deno.test("package: the lockfile holds the demo's npm packages and only the listed others", async () => {
  const lock = JSON.parse(await Deno.readTextFile(new URL("../deno.lock", import.meta.url)));
  const locked = Object.keys(lock.specifiers ?? {}).filter((s) => s.startsWith("npm:"))
    .map((s) => s.slice(4).replace(/@[^@]*$/, ""));
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "examples/demo.ts"],
    cwd: new URL("..", import.meta.url),
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(info.code, 0, new TextDecoder().decode(info.stderr));
  const graph = JSON.parse(new TextDecoder().decode(info.stdout)) as { modules: { specifier: string }[] };
  const used = new Set(
    graph.modules.map((m) => /^npm:\/(.+)@[^@]+$/.exec(m.specifier)?.[1]).filter((n) => n !== undefined),
  );
  assert.ok(used.has("esbuild") && used.has("ts-morph"), [...used].join(", "));
  const extra = locked.filter((name) => !used.has(name)).sort();
  assert.deepEqual(extra, Object.keys(NOT_IN_DEMO).sort(), "npm packages the demo would download without using");
});
