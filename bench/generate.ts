/**
 * @file `deno task bench:generate [spec] [labels] [--target js|webgpu] [--gemm wasm|js] [--labels L]
 * [--var FILE --vae FILE] [--warmup N] [--threads N]`: seconds per image and per stage, and peak
 * memory, for a VAR spec (default: the official d16 shape, 256 px, on the js target with the WASM
 * GEMM) on seeded random weights, or on the checkpoints given with `--var`/`--vae`. `--warmup N`
 * runs N untimed generations of the same batch first; `--threads N` sets the GEMM threads. Prints
 * one JSON object on stdout (progress goes to stderr); `bench/cpu.ts` runs it once per model and
 * target, `bench/torch.ts` once per round.
 *
 * `--throughput [--batches 1,4,8] [--d16]`: images per second at each batch size, as `varc sample`
 * makes them (per-image seeds, one batch of B images per generation), for the tiny model (fixture
 * weights) and the glyph model (shipped weights), and with `--d16` the official d16 shape on seeded
 * random weights (opt-in: minutes per batch size on two cores). Each batch size makes the same images
 * (as many as the largest batch, at least 8), repeated until 2 s have passed, after one untimed batch.
 */
import { parseArgs } from "node:util";
import { compile } from "../compiler/mod.ts";
import { generate, type GenerateOptions } from "../runtime/generate.ts";
import { gemmThreads, setGemmBackend, setGemmThreads } from "../runtime/js/wasm/gemm.ts";
import { importModel, loadModel } from "../runtime/mod.ts";
import { randomModel } from "../runtime/random.ts";
import { imageSeed } from "../runtime/sample.ts";

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
    throughput: { type: "boolean" },
    batches: { type: "string", default: "1,4,8" },
    d16: { type: "boolean" },
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

if (flags.throughput) {
  console.log(JSON.stringify(await throughput(), null, 2));
  Deno.exit(0);
}

/** Images per second per batch size for each model (see the file comment). */
async function throughput() {
  const batches = flags.batches!.split(",").map(Number);
  if (!batches.every((b) => Number.isInteger(b) && b >= 1)) throw new Error(`--batches: whole numbers ≥ 1`);
  const fixture = "tests/fixtures/var_tiny_a/", glyphs = "examples/glyphs/";
  const models = [
    {
      name: "tiny",
      spec: "examples/var_tiny_a.var.ts",
      var: `${fixture}var.safetensors`,
      vae: `${fixture}vae.safetensors`,
    },
    {
      name: "glyphs",
      spec: `${glyphs}standard.var.ts`,
      var: `${glyphs}var_standard.safetensors`,
      vae: `${glyphs}vae.safetensors`,
    },
    ...(flags.d16 ? [{ name: "d16", spec: "examples/var_d16.var.ts", var: undefined, vae: undefined }] : []),
  ];
  if (!flags.d16) {
    console.error("d16 skipped: pass --d16 to include it (random weights; about 17 s an image on 2 cores, so minutes)");
  }
  const images = Math.max(8, ...batches);
  const results = [];
  for (const m of models) {
    const module = await importModel((await compile(m.spec, { target })).emitted.bundle);
    const model = m.var ? await loadModel(module, { var: m.var, vae: m.vae }) : randomModel(module, 1).model;
    const classes = module.info.meta.classes as number;
    const base = { cfg: 1.5, topK: Math.min(900, module.info.meta.vocab as number), topP: 0.96, seed: 0 };
    const run = (start: number, B: number) =>
      generate(model, {
        ...base,
        labels: Array.from({ length: B }, (_, b) => (start + b) % classes),
        seeds: Array.from({ length: B }, (_, b) => imageSeed(0, start + b)),
      });
    const rows = [];
    for (const B of batches) {
      await run(0, B); // warm-up: kernels compiled, buffers grown
      const t0 = performance.now();
      let made = 0;
      do { // rounds of the same images until at least 2 s have passed
        for (let i = 0; i < images; i += B) await run(i, Math.min(B, images - i));
        made += images;
      } while (performance.now() - t0 < 2000);
      const seconds = (performance.now() - t0) / 1000;
      rows.push({ batch: B, images: made, seconds, imagesPerSecond: made / seconds });
      const rate = (made / seconds).toFixed(2);
      console.error(`${m.name} (${target}): batch ${B}: ${rate} images/s (${made} in ${seconds.toFixed(2)} s)`);
    }
    results.push({ model: m.name, spec: m.spec, weights: m.var ? "checkpoint" : "seeded random", batches: rows });
  }
  return {
    target,
    threads: gemmThreads(),
    machine: `${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`,
    date: new Date().toISOString(),
    settings: "cfg 1.5, top-k min(900, V), top-p 0.96, per-image seeds",
    results,
    ...(flags.d16 ? {} : { skipped: "d16 (pass --d16)" }),
  };
}

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
