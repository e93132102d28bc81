/**
 * @file `deno task bench:generate [spec] [labels] [--target js|webgpu] [--gemm wasm|js]`: seconds
 * per image and per stage, and peak memory, for a VAR spec on seeded random weights (default: the
 * official d16 shape, 256 px, on the js target with the WASM GEMM). Prints one JSON object on
 * stdout (progress goes to stderr); `bench/cpu.ts` runs it once per model and target.
 */
import { parseArgs } from "node:util";
import { compile } from "../compiler/mod.ts";
import { generate } from "../runtime/generate.ts";
import { setGemmBackend } from "../runtime/js/wasm/gemm.ts";
import { importModel } from "../runtime/mod.ts";
import { randomModel } from "../runtime/random.ts";

const { values: flags, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { target: { type: "string", default: "js" }, gemm: { type: "string", default: "wasm" } },
});
const spec = positionals[0] ?? "examples/var_d16.var.ts";
const labels = (positionals[1] ?? "0").split(",").map(Number);
const target = flags.target!;
// "js": the plain JS kernel; "wasm": the default (WASM SIMD GEMM on all threads where available)
if (flags.gemm === "js") setGemmBackend("js");

let peak = 0;
const sample = () => (peak = Math.max(peak, Deno.memoryUsage().rss));
const timer = setInterval(sample, 200);
/** The kernel's high-water mark of the resident set where /proc exists, else the sampled peak. */
function peakRss(): number {
  try {
    const kb = Number(Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s*(\d+)/)?.[1]);
    if (kb > 0) return kb * 1024;
  } catch { /* not Linux */ }
  return peak;
}

const t0 = performance.now();
const compiled = await compile(spec, { target });
const module = await importModel(compiled.emitted.bundle);
const t1 = performance.now();
const { model } = randomModel(module, 1);
const t2 = performance.now();
const perScale: number[] = [];
const g = await generate(model, {
  labels,
  cfg: 1.5,
  topK: Math.min(900, module.info.meta.vocab as number), // the official 900, within small vocabularies
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
  target,
  gemm: flags.gemm,
  adapter: await model.device(),
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
  peakRssGiB: peakRss() / 2 ** 30,
  parameters: compiled.report.parameters,
};
console.log(JSON.stringify(result, null, 2));
