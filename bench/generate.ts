/**
 * @file `deno task bench:generate [spec] [labels] [--target js|webgpu] [--gemm wasm|js] [--labels L]
 * [--var FILE --vae FILE] [--warmup N] [--threads N]`: seconds per image and per stage, and peak
 * memory, for a VAR spec (default: the official d16 shape, 256 px, on the js target with the WASM
 * GEMM) on seeded random weights, or on the checkpoints given with `--var`/`--vae`. `--warmup N`
 * runs N untimed generations of the same batch first; `--threads N` sets the GEMM threads. Prints
 * one JSON object on stdout (progress goes to stderr); `bench/cpu.ts` runs it once per model and
 * target, `bench/torch.ts` once per round.
 */
import { parseArgs } from "node:util";
import { compile } from "../compiler/mod.ts";
import { generate, type GenerateOptions } from "../runtime/generate.ts";
import { gemmThreads, setGemmBackend, setGemmThreads } from "../runtime/js/wasm/gemm.ts";
import { importModel, loadModel } from "../runtime/mod.ts";
import { randomModel } from "../runtime/random.ts";

const { values: flags, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    target: { type: "string", default: "js" },
    gemm: { type: "string", default: "wasm" },
    labels: { type: "string" },
    var: { type: "string" },
    vae: { type: "string" },
    warmup: { type: "string", default: "0" },
    threads: { type: "string" },
  },
});
const spec = positionals[0] ?? "examples/var_d16.var.ts";
const labels = (flags.labels ?? positionals[1] ?? "0").split(",").map(Number);
const target = flags.target!;
const warmup = Number(flags.warmup);
if (!(Number.isInteger(warmup) && warmup >= 0)) throw new Error(`--warmup must be an integer ≥ 0, got ${flags.warmup}`);
if ((flags.var === undefined) !== (flags.vae === undefined)) throw new Error("--var and --vae go together");
// "js": the plain JS kernel; "wasm": the default (WASM SIMD GEMM on all threads where available)
if (flags.gemm === "js") setGemmBackend("js");
// GEMM threads (the caller and its workers); default: the logical cores, at most 4
if (flags.threads !== undefined) setGemmThreads(Number(flags.threads));

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
const model = flags.var ? await loadModel(module, { var: flags.var, vae: flags.vae }) : randomModel(module, 1).model;
const t2 = performance.now();
const options: GenerateOptions = {
  labels,
  cfg: 1.5,
  topK: Math.min(900, module.info.meta.vocab as number), // the official 900, within small vocabularies
  topP: 0.96,
  seed: 0,
};
for (let i = 0; i < warmup; i++) {
  const w = await generate(model, options);
  console.error(
    `warm-up ${i + 1}/${warmup}: ${(Object.values(w.timings).reduce((a, b) => a + b) / 1000).toFixed(2)} s`,
  );
}
const perScale: number[] = [];
const g = await generate(model, {
  ...options,
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
  threads: gemmThreads(),
  adapter: await model.device(),
  machine: `${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`,
  date: new Date().toISOString(),
  images: B,
  imageSide: g.img.shape[2],
  weights: flags.var ? { var: flags.var, vae: flags.vae } : "seeded random",
  warmup,
  seconds: {
    compile: (t1 - t0) / 1000,
    ...(flags.var ? { load: (t2 - t1) / 1000 } : { randomWeights: (t2 - t1) / 1000 }),
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
