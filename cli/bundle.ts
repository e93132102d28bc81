/** @file `varc bundle`: spec -> one self-contained ES module (kernels, runtime, loader API) and its `.d.ts`. */
import { prepareOutputDir, writeAtomic } from "./output.ts";
import { join } from "node:path";
import { bundleSpec } from "../compiler/esbuild_plugin.ts";
import { LOWERING_FLAGS, LOWERING_HELP, loweringOptions } from "./lowering.ts";
import { isTargetName, targetChoices } from "../compiler/targets.ts";
import { type Command, required, specArg, terminalText, UsageError } from "./common.ts";

export const bundleCommand: Command = {
  summary: "Bundle a spec into one ES module for browsers and Deno (model + loader)",
  usage: `Usage: varc bundle <spec.var.ts> --out DIR [--target js|webgpu] [options]

Writes DIR/model.js, one minified ES module with the generated kernels, the runtime and a small
loader API, and DIR/model.d.ts. It loads in Deno and in browsers:

  import * as model from "./model.js";
  const loaded = await model.load({ var: "var.safetensors", vae: "vae.safetensors" }, { onProgress });
  const g = await model.generate(loaded, { labels: [3], cfg: 1.5, topK: 900, topP: 0.96, seed: 0 });
  const { width, height, data } = model.toRgba(g.img, 0); // RGBA bytes for ImageData

Exports: info, entries (and Gpu on webgpu, guardStats on js), report (the compile report),
load(weights, options) (bytes, URLs fetched with streamed progress, or file paths in Deno),
generate, fetchBytes, toRgba, and a default export holding all of them.

Options:
  --out DIR                output directory (created if missing)
  --target T               js or webgpu (default js)
${LOWERING_HELP}
  --no-minify              keep the module readable
  -h, --help               show this help`,
  options: {
    out: { type: "string" },
    target: { type: "string" },
    ...LOWERING_FLAGS,
    "no-minify": { type: "boolean" },
  },
  async run(values, positionals) {
    const spec = specArg(positionals);
    const out = required(values, "out");
    await prepareOutputDir(out, "--out", ["model.js", "model.d.ts"]);
    const target = values.target ?? "js";
    if (!isTargetName(target)) {
      throw new UsageError(`--target must be ${targetChoices()}, got ${terminalText(String(target))}`);
    }
    const t0 = performance.now();
    const bundle = await bundleSpec(spec, { ...loweringOptions(values), target, minify: !values["no-minify"] });
    await writeAtomic(join(out, "model.js"), bundle.code);
    await writeAtomic(join(out, "model.d.ts"), bundle.dts);
    const r = bundle.compiled.report;
    const kib = (new TextEncoder().encode(bundle.code).length / 1024).toFixed(0);
    console.log(
      [
        `bundled ${r.name} (${r.spec}) for ${target} in ${((performance.now() - t0) / 1000).toFixed(2)} s`,
        `  attention: ${
          r.attention.filter((a) => a.decision === "lowrank").length
        } of ${r.attention.length} blocks low-rank`,
        `  wrote ${join(out, "model.js")} (${kib} KiB) and model.d.ts`,
      ].join("\n"),
    );
  },
};
