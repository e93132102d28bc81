/**
 * @file `deno task demo [standard|bounded]`: compile a shipped glyph VAR (`examples/glyphs/standard.var.ts`
 * by default, or the bounded-entry one with low-rank attention), load its trained checkpoints (in the
 * repository, no download), generate a grid of glyphs (several classes, several seeds) on the JS target,
 * and write the grid as a PNG with a report.
 */
import { join } from "node:path";
import { compile } from "../compiler/mod.ts";
import { summary, writeArtifacts } from "../cli/compile.ts";
import { generate, type Generation } from "../runtime/generate.ts";
import { importModel, loadModel } from "../runtime/mod.ts";
import { gridPng } from "../runtime/png.ts";

const which = Deno.args[0] ?? "standard";
if (which !== "standard" && which !== "bounded") {
  console.error(`demo: unknown model "${which}": give standard (the default) or bounded`);
  Deno.exit(2);
}
const SPEC = `examples/glyphs/${which}.var.ts`;
const WEIGHTS = { var: `examples/glyphs/var_${which}.safetensors`, vae: "examples/glyphs/vae.safetensors" };
const OUT = "out/demo";
const CHARS = "0123456789VARCGKSZ"; // one grid row per character
const SEEDS = [0, 1, 2, 3, 4, 5, 6, 7]; // one grid column per seed
const settings = { cfg: 2, topK: 20, topP: 0.6 }; // the best of a small sweep by classifier accuracy (MODEL_CARD.md)

const t0 = performance.now();
const compiled = await compile(SPEC);
await writeArtifacts(compiled, OUT);
console.log(summary(compiled.report, OUT));
console.log(`  compile: ${(performance.now() - t0).toFixed(0)} ms`);

const module = await importModel(compiled.emitted.bundle);
const model = await loadModel(module, WEIGHTS);
const meta = module.info.meta as { classNames: string; schedule: number[] };
const labels = [...CHARS].map((ch) => meta.classNames.indexOf(ch));
console.log(
  `\ngenerating "${CHARS}" with seeds ${
    SEEDS.join(",")
  } (cfg ${settings.cfg}, top-k ${settings.topK}, top-p ${settings.topP})`,
);
const t1 = performance.now();
const runs: Generation[] = [];
for (const seed of SEEDS) runs.push(await generate(model, { ...settings, labels, seed })); // one batch per seed
const seconds = (performance.now() - t1) / 1000;

const grid = labels.map((_, i) => runs.map((g) => ({ img: g.img.data as Float32Array, shape: g.img.shape, i })));
const file = join(OUT, "glyphs.png");
await Deno.writeFile(file, gridPng(grid, 3, 3));
const report = {
  spec: SPEC,
  weights: WEIGHTS,
  settings: { ...settings, chars: CHARS, labels, seeds: SEEDS },
  image: file,
  seconds,
  imagesPerSecond: (labels.length * SEEDS.length) / seconds,
};
await Deno.writeTextFile(join(OUT, "generation.json"), JSON.stringify(report, null, 2) + "\n");
const [h, w] = runs[0]!.img.shape.slice(2);
console.log(
  `\nwrote ${file}: ${labels.length} characters × ${SEEDS.length} seeds, ${h}×${w} images drawn 3× (rows: "${CHARS}")`,
);
console.log(`time: ${seconds.toFixed(2)} s for ${labels.length * SEEDS.length} images; report ${OUT}/generation.json`);
console.log(`generated code: ${OUT}/model.src.ts (readable) and ${OUT}/model.js (bundled)`);
