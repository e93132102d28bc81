/** @file `varc generate`: class-conditional images, as the official `autoregressive_infer_cfg`. */
import { prepareOutputDir, writeAtomic } from "./output.ts";
import { join } from "node:path";
import { checkGenerateOptions, checkGenerationMemory, generate, GENERATE_ENTRIES } from "../runtime/generate.ts";
import { loadModel } from "../runtime/mod.ts";
import { toPng } from "../runtime/png.ts";
import { writeSafetensors } from "../runtime/safetensors.ts";
import { LOWERING_FLAGS, LOWERING_HELP } from "./lowering.ts";
import { type Command, numberFlag, parseLabels, required, scaleProgress, specArg } from "./common.ts";
import { compileModel } from "./model.ts";

export const generateCommand: Command = {
  summary: "Generate images for class labels (next-scale prediction, CFG, top-k/top-p)",
  usage: `Usage: varc generate <spec.var.ts> --var VAR.safetensors --vae VAE.safetensors --labels 3,7 --out DIR
                    [--cfg 1.5] [--top-k 900] [--top-p 0.96] [--seed 0]

Runs the official autoregressive_infer_cfg: 2B rows (classes, then unconditional), a KV cache
per block, guidance t = cfg·s/(S−1) ramping over scales, top-k then top-p sampling from a seeded
generator (same seed, same images), then the VQ-VAE decoder. Writes DIR/image_<i>.png and
DIR/outputs.safetensors with idx_BL (I32 [B, L]), tokens_<k> (I32 [B, pn_k, pn_k], the same tokens per
scale), f_hat (F32 [B, Cvae, n, n]) and img (F32 [B, 3, H, W] in [0, 1]).

Options:
  --var FILE               VAR checkpoint (safetensors, official state-dict names)
  --vae FILE               VQ-VAE checkpoint
  --labels LIST            one class index per image, e.g. 3,7
  --cfg X                  guidance scale ≥ 0 (default 1.5)
  --top-k K                keep the K largest logits, 0 = all (default 900, at most the vocabulary)
  --top-p P                nucleus mass in [0, 1], 0 = off (default 0.96)
  --seed N                 sampling seed (default 0)
  --out DIR                output directory (created if missing)
  --target T               js, webgpu, or auto (WebGPU when an adapter exists; default js)
${LOWERING_HELP}
  -h, --help               show this help`,
  options: {
    var: { type: "string" },
    vae: { type: "string" },
    labels: { type: "string" },
    cfg: { type: "string" },
    "top-k": { type: "string" },
    "top-p": { type: "string" },
    seed: { type: "string" },
    out: { type: "string" },
    target: { type: "string" },
    ...LOWERING_FLAGS,
    "print-ir-after": { type: "string" },
  },
  async run(values, positionals) {
    const spec = specArg(positionals);
    const [varPath, vaePath, out, labelText] = ["var", "vae", "out", "labels"].map((f) => required(values, f));
    // Before any work: a bad --out fails in milliseconds, not after the run.
    const images = labelText!.split(",").map((_, i) => `image_${i}.png`);
    await prepareOutputDir(out!, "--out", [...images, "outputs.safetensors"]);
    const settings = {
      cfg: numberFlag(values, "cfg", 1.5),
      topK: numberFlag(values, "top-k", -1), // -1: the official 900, or the whole vocabulary if smaller
      topP: numberFlag(values, "top-p", 0.96),
      seed: numberFlag(values, "seed", 0),
    };
    const { module, meta, compileMs } = await compileModel(spec, values, "generate", GENERATE_ENTRIES);
    if (settings.topK === -1 && values["top-k"] === undefined) settings.topK = Math.min(900, meta.vocab);
    const options = {
      ...settings,
      labels: parseLabels(labelText!, meta.classes),
      onScale: scaleProgress(meta.schedule),
    };
    checkGenerateOptions(options, meta); // before reading checkpoints, which may be gigabytes
    checkGenerationMemory(module.info.meta, options.labels.length);
    const t0 = performance.now();
    let model = await loadModel(module, { var: varPath, vae: vaePath });
    const loadMs = performance.now() - t0;
    const labels = options.labels;
    let g;
    try {
      g = await generate(model, options);
    } catch (e) {
      if (values.target !== "auto" || !DEVICE_FAILURES.has((e as Error).name)) throw e;
      console.error(`WebGPU failed (${(e as Error).message}); falling back to the js target`);
      const js = await compileModel(spec, { ...values, target: "js" }, "generate", GENERATE_ENTRIES);
      model = await loadModel(js.module, { var: varPath, vae: vaePath });
      g = await generate(model, options);
    }
    const files = labels.map((_, i) => join(out!, `image_${i}.png`));
    for (const [i, f] of files.entries()) await writeAtomic(f, toPng(g.img.data as Float32Array, g.img.shape, i));
    await writeAtomic(
      join(out!, "outputs.safetensors"),
      writeSafetensors([
        { name: "idx_BL", dtype: "I32", shape: [labels.length, meta.tokens], data: g.idx },
        ...scaleTokens(g.idx, labels.length, meta.schedule),
        { name: "f_hat", dtype: "F32", shape: g.fhat.shape, data: g.fhat.data as Float32Array },
        { name: "img", dtype: "F32", shape: g.img.shape, data: g.img.data as Float32Array },
      ], { producer: "varc generate", spec, labels: labels.join(","), ...stringify(settings) }),
    );
    const t = g.timings;
    const guard = await model.guardStats();
    if (guard.checks > 0) {
      console.log(`low-rank guard: ${guard.checks} head checks, ${guard.fallbacks} fell back to exact attention`);
    }
    const device = await model.device();
    console.log(
      `wrote ${files.join(", ")} and ${join(out!, "outputs.safetensors")}${device ? ` (WebGPU: ${device})` : ""}`,
    );
    console.log(
      `time: compile ${s(compileMs)}, load ${s(loadMs)}, transformer ${s(t.transformer)}, sampling ${s(t.sampling)}, ` +
        `f̂ ${s(t.fhat)}, decode ${s(t.decode)} (${labels.length} image${labels.length === 1 ? "" : "s"})`,
    );
  },
};

/** Every scale's tokens as `tokens_<k>` [B, pn, pn] (the same numbers as idx_BL, split by scale). */
function scaleTokens(idx: Int32Array, B: number, schedule: readonly number[]) {
  const L = idx.length / B;
  let start = 0;
  return schedule.map((pn, k) => {
    const data = new Int32Array(B * pn * pn);
    for (let b = 0; b < B; b++) data.set(idx.subarray(b * L + start, b * L + start + pn * pn), b * pn * pn);
    start += pn * pn;
    return { name: `tokens_${k}`, dtype: "I32" as const, shape: [B, pn, pn], data };
  });
}

/** Errors of the device itself: `--target auto` falls back to js on these. */
const DEVICE_FAILURES = new Set(["DeviceLostError", "NoAdapterError", "WgslError"]);

function s(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

function stringify(o: Record<string, number>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, String(v)]));
}
