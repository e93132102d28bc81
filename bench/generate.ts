/**
 * @file `deno task bench:generate [spec] [labels]`: seconds per image and per stage, and peak
 * memory, for a VAR spec on seeded random weights (default: the official d16 shape, 256 px).
 */
import { compile } from "../compiler/mod.ts";
import { generate } from "../runtime/generate.ts";
import { importModel } from "../runtime/mod.ts";
import { randomModel } from "../runtime/random.ts";

const spec = Deno.args[0] ?? "examples/var_d16.var.ts";
const labels = (Deno.args[1] ?? "0").split(",").map(Number);
let peak = 0;
const sample = () => (peak = Math.max(peak, Deno.memoryUsage().rss));
const timer = setInterval(sample, 200);

const t0 = performance.now();
const compiled = await compile(spec);
const module = await importModel(compiled.emitted.bundle);
const t1 = performance.now();
const { model } = randomModel(module, 1);
const t2 = performance.now();
const perScale: number[] = [];
const g = await generate(model, {
  labels,
  cfg: 1.5,
  topK: 900,
  topP: 0.96,
  seed: 0,
  onScale: (s, S, ms) => {
    perScale.push(ms / 1000);
    sample();
    console.error(`scale ${s + 1}/${S}: ${(ms / 1000).toFixed(2)} s`);
  },
});
sample();
clearInterval(timer);
const t = g.timings, B = labels.length;
const result = {
  spec,
  machine: `${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`,
  date: new Date().toISOString(),
  images: B,
  imageSide: g.img.shape[2],
  seconds: {
    compile: (t1 - t0) / 1000,
    randomWeights: (t2 - t1) / 1000,
    transformer: t.transformer / 1000,
    sampling: t.sampling / 1000,
    fhat: t.fhat / 1000,
    decode: t.decode / 1000,
    perImage: (t.transformer + t.sampling + t.fhat + t.decode) / 1000 / B,
  },
  perScaleSeconds: perScale,
  peakRssGiB: peak / 2 ** 30,
  parameters: compiled.report.parameters,
};
console.log(JSON.stringify(result, null, 2));
