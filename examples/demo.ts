/**
 * @file `deno task demo`: compile the tiny VAR spec, make seeded random checkpoints for it (no
 * download), generate two class-conditional images on the JS target, and write them with a report.
 */
import { join } from "node:path";
import { compile } from "../compiler/mod.ts";
import { summary, writeArtifacts } from "../cli/compile.ts";
import { scaleProgress } from "../cli/common.ts";
import { generate } from "../runtime/generate.ts";
import { importModel } from "../runtime/mod.ts";
import { toPng } from "../runtime/png.ts";
import { randomModel } from "../runtime/random.ts";

const SPEC = "examples/var_tiny_a.var.ts";
const OUT = "out/demo";
const settings = { labels: [3, 7], cfg: 1.5, topK: 100, topP: 0.96, seed: 0 };

const t0 = performance.now();
const compiled = await compile(SPEC);
await writeArtifacts(compiled, OUT);
console.log(summary(compiled.report, OUT));
console.log(`  compile: ${(performance.now() - t0).toFixed(0)} ms`);

const module = await importModel(compiled.emitted.bundle);
const { model } = randomModel(module, 2024); // seeded random weights in official layout
const meta = module.info.meta as { schedule: number[] };
console.log(
  `\ngenerating labels ${
    settings.labels.join(",")
  } (cfg ${settings.cfg}, top-k ${settings.topK}, top-p ${settings.topP}, seed ${settings.seed}) on random weights`,
);
const g = await generate(model, { ...settings, onScale: scaleProgress(meta.schedule) });

const files = settings.labels.map((_, i) => join(OUT, `image_${i}.png`));
await Promise.all(files.map((f, i) => Deno.writeFile(f, toPng(g.img.data as Float32Array, g.img.shape, i))));
const t = g.timings;
const report = {
  spec: SPEC,
  settings,
  images: files,
  seconds: {
    transformer: t.transformer / 1000,
    sampling: t.sampling / 1000,
    fhat: t.fhat / 1000,
    decode: t.decode / 1000,
  },
  tokensPerScale: meta.schedule.map((pn) => pn * pn),
};
await Deno.writeTextFile(join(OUT, "generation.json"), JSON.stringify(report, null, 2) + "\n");
console.log(`\nwrote ${files.join(", ")} (${g.img.shape[2]}x${g.img.shape[3]}) and ${join(OUT, "generation.json")}`);
console.log(
  `time: transformer ${report.seconds.transformer.toFixed(2)} s, decode ${report.seconds.decode.toFixed(2)} s`,
);
console.log(
  `generated code: ${OUT}/model.src.ts (readable) and ${OUT}/model.js (bundled); random weights give noise-like images`,
);
