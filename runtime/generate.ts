/**
 * @file Next-scale generation, exactly the official `autoregressive_infer_cfg`: 2B rows (class,
 * then unconditional), KV cache per block, guidance ramp t = cfg·s/(S−1), top-k/top-p sampling from a
 * seeded generator, f̂ accumulation, next input by area downsampling, final decode. Written once
 * against the model's `ModelDevice` (`device.ts`): on a GPU the caches (or low-rank states), f̂ and
 * the next input stay on the device between entries, and the logits are guided and sampled there (the
 * host still draws the uniforms): only the tokens of each scale, the final f̂ and the image are read
 * back.
 */
import type { ModelDevice } from "./device.ts";
import type { HostTensor, LoadedModel, Tensor } from "./mod.ts";
import { checkFiniteOutput, Generator } from "./sample.ts";
import { checkVarEntries, checkVarMeta, type VarMeta, type VarModule } from "./var_model.ts";

/** What `generate` needs besides the model. */
export interface GenerateOptions {
  readonly labels: readonly number[];
  readonly cfg: number;
  readonly topK: number;
  readonly topP: number;
  readonly seed: number;
  /**
   * One seed per label: row b then draws only from its own generator, seeded `seeds[b]`, so an image
   * does not depend on the other rows of its batch (`seed` is not used). Without it, all rows draw in
   * turn from one generator seeded `seed`; for one label both are the same.
   */
  readonly seeds?: readonly number[];
  /** Called after each scale with its index and the milliseconds it took. */
  readonly onScale?: (s: number, scales: number, ms: number) => void;
  /** Keep the guided logits of the first `keepGuided` scales (for parity checks). */
  readonly keepGuided?: number;
  /** Labelled tensors to tap in every step, passed to `onTaps`. */
  readonly taps?: readonly string[];
  readonly onTaps?: (taps: Record<string, HostTensor>) => void;
}

/** Everything a generation produces. */
export interface Generation {
  /** [B, L] tokens, scales concatenated, row-major inside a scale. */
  readonly idx: Int32Array;
  /** [B, Cvae, n, n], the decoder's input. */
  readonly fhat: HostTensor;
  /** [B, 3, H, W] in [0, 1]. */
  readonly img: HostTensor;
  readonly guided: Float32Array[];
  /**
   * Milliseconds per stage. On device targets each scale's f̂ update, step and sampling kernel share one
   * command buffer that runs at the token read-back: all of it counts as `transformer` (`sampling` and
   * `fhat` stay near 0).
   */
  readonly timings: {
    readonly transformer: number;
    readonly sampling: number;
    readonly fhat: number;
    readonly decode: number;
  };
}

/** Generation settings that are out of range. */
export class GenerateError extends Error {
  override name = "GenerateError";
}

/**
 * Largest guidance scale: guided logits are (1 + t)·cond − t·uncond with t ≤ cfg, and beyond this every
 * distribution is already one-hot while larger t only nears float32 overflow (a NaN logit).
 */
export const MAX_CFG = 1e4;

/**
 * Names what a model lacks for `command` (entries and the VAR metadata): a spec that is not a VAR
 * built with varModel gets this instead of a JavaScript TypeError from deep inside the loop.
 */
export function requireVarEntries(
  module: VarModule & { readonly entries: Readonly<Record<string, unknown>> },
  command: string,
  entries: (schedule: readonly number[]) => string[],
): void {
  const meta = module.info.meta as Partial<VarMeta> | undefined;
  const fields = ["schedule", "classes", "vocab", "tokens"] as const;
  const noMeta = fields.filter((k) => meta?.[k] === undefined);
  if (noMeta.length > 0) {
    throw new GenerateError(
      `${command} needs a VAR model built with varModel: its metadata has no ${noMeta.join(", ")}`,
    );
  }
  checkVarMeta(module, command);
  const needed = entries(meta!.schedule!);
  const missing = needed.filter((e) => !(e in module.entries));
  if (missing.length > 0) {
    throw new GenerateError(
      `${command} needs a VAR model built with varModel: no entry ${missing.slice(0, 3).join(", ")}${
        missing.length > 3 ? ` (and ${missing.length - 3} more)` : ""
      } (it has ${Object.keys(module.entries).join(", ") || "none"})`,
    );
  }
  checkVarEntries(module, command, needed);
}

/** The entries `generate` runs: every step_s and fhat_s, then decode. */
export const GENERATE_ENTRIES = (schedule: readonly number[]) => [
  ...schedule.flatMap((_, s) => [`step_${s}`, `fhat_${s}`]),
  "decode",
];

/** Checks labels and sampling settings against the model, naming the bad flag. */
export function checkGenerateOptions(
  o: GenerateOptions,
  meta: Pick<VarMeta, "schedule" | "classes" | "vocab" | "tokens">,
): void {
  if (o.labels.length === 0) throw new GenerateError("--labels: give at least one class index");
  for (const l of o.labels) {
    if (!Number.isInteger(l) || l < 0 || l >= meta.classes) {
      throw new GenerateError(`--labels: ${l} is not a class index in [0, ${meta.classes})`);
    }
  }
  if (!(o.cfg >= 0 && o.cfg <= MAX_CFG)) {
    throw new GenerateError(`--cfg must be in [0, ${MAX_CFG}], got ${o.cfg}`);
  }
  if (!(Number.isInteger(o.topK) && o.topK >= 0 && o.topK <= meta.vocab)) {
    throw new GenerateError(`--top-k must be an integer in [0, ${meta.vocab}] (0 disables it), got ${o.topK}`);
  }
  if (!(o.topP >= 0 && o.topP <= 1)) {
    throw new GenerateError(`--top-p must be in [0, 1] (0 disables it), got ${o.topP}`);
  }
  if (!Number.isSafeInteger(o.seed)) throw new GenerateError(`--seed must be an integer, got ${o.seed}`);
  if (o.seeds !== undefined) {
    if (o.seeds.length !== o.labels.length) {
      throw new GenerateError(`seeds: one per label, got ${o.seeds.length} for ${o.labels.length} labels`);
    }
    const bad = o.seeds.find((s) => !Number.isSafeInteger(s));
    if (bad !== undefined) throw new GenerateError(`seeds: ${bad} is not an integer`);
  }
}

/** A generation that would not fit in memory, refused before it starts. */
export class ResourceError extends Error {
  override name = "ResourceError";
}

/**
 * Peak bytes of the generation for B images, from the compiler's per-entry plan (`meta.memory`): steps
 * run on 2B rows, f̂ and decode on B. The checkpoints are already in memory and not counted.
 */
export function generationBytes(meta: Readonly<Record<string, unknown>>, B: number): { bytes: number; entry: string } {
  const memory = (meta.memory ?? {}) as Record<string, { fixedBytes: number; perRowBytes: number }>;
  let worst = { bytes: 0, entry: "" };
  for (const [entry, m] of Object.entries(memory)) {
    if (entry === "forward" || entry === "tokens_to_fhat") continue;
    const rows = entry.startsWith("step_") ? 2 * B : B;
    const bytes = m.fixedBytes + m.perRowBytes * rows;
    if (bytes > worst.bytes) worst = { bytes, entry };
  }
  return worst;
}

/** Refuses a batch whose planned peak exceeds the memory available now (numbers in the message). */
export function checkGenerationMemory(
  meta: Readonly<Record<string, unknown>>,
  B: number,
  available = availableBytes(),
  flag = "--labels",
): void {
  const { bytes, entry } = generationBytes(meta, B);
  if (bytes > available) {
    const gib = (x: number) => `${(x / 2 ** 30).toFixed(2)} GiB`;
    const perImage = generationBytes(meta, 1).bytes;
    const fits = Math.max(0, Math.floor(available / Math.max(1, perImage)));
    throw new ResourceError(
      `${flag}: ${B} images need about ${gib(bytes)} at their peak (${entry}), but ${gib(available)} are available; ` +
        `at most about ${fits} images fit at once: generate in smaller batches`,
    );
  }
}

/** Bytes of memory available now (Infinity where the system does not say). */
export function availableBytes(): number {
  try {
    return Deno.systemMemoryInfo().available;
  } catch {
    return Infinity;
  }
}

/** Runs the whole generation loop on a loaded model. */
export async function generate(model: LoadedModel, o: GenerateOptions): Promise<Generation> {
  requireVarEntries(model.module, "generate", GENERATE_ENTRIES);
  const meta = model.module.info.meta as unknown as VarMeta;
  checkGenerateOptions(o, meta);
  checkGenerationMemory(model.module.info.meta, o.labels.length);
  const { schedule, vocab, classes } = meta;
  const S = schedule.length, B = o.labels.length;
  const gens = o.seeds ? o.seeds.map((seed) => new Generator(seed)) : [new Generator(o.seed)];
  const labels2 = { data: Int32Array.from([...o.labels, ...o.labels.map(() => classes)]), shape: [2 * B] };
  const idx = new Int32Array(B * meta.tokens);
  const guided: Float32Array[] = [];
  const time = { transformer: 0, sampling: 0, fhat: 0, decode: 0 };
  const dev = model.tensors; // host arrays, or device tensors that stay on the device between entries
  let carry: Record<string, Tensor> = {}; // KV caches (or low-rank states) of the earlier scales
  let fhat: Tensor | undefined, words: Tensor | undefined;
  let start = 0;
  for (let s = 0; s < S; s++) {
    const t0 = performance.now();
    const T = schedule[s]! ** 2;
    const inputs: Record<string, Tensor> = { labels: labels2, ...carry };
    let doubled: Tensor | undefined;
    if (words) {
      inputs.x_words = doubled = await dev.twice(words);
      await dev.release(words);
      words = undefined;
    }
    const entry = model.module.info.entries[`step_${s}`]!;
    const taps = (o.taps ?? []).filter((t) => entry.labels.includes(t));
    const keep = entry.outputs.map((x) => x.name);
    const step = await model.run(`step_${s}`, pick(inputs, entry.inputs), { taps, keep });
    if (o.onTaps) o.onTaps(step.taps);
    const { logits, ...caches } = step.outputs as Record<string, Tensor>;
    await releaseAll(dev, [...Object.values(carry), ...(doubled ? [doubled] : [])], caches);
    carry = caches;
    const t1 = performance.now();
    const ratio = S === 1 ? 0 : o.cfg * s / (S - 1), keepGuided = s < (o.keepGuided ?? 0);
    // [B·T]: one per sampled token, row b's T from its own generator (per-row seeds) or all B·T from the one
    const uniforms = Float64Array.from(
      { length: B * T },
      (_, i) => gens[o.seeds ? (i / T) | 0 : 0]!.uniform(),
    );
    const sampled = await dev.sample(logits!, {
      B,
      T,
      V: vocab,
      t: ratio,
      topK: o.topK,
      topP: o.topP,
      uniforms,
      guided: keepGuided,
    });
    if (sampled.guided) guided.push(sampled.guided);
    const { tokens, host } = sampled; // [B, T]
    for (let b = 0; b < B; b++) idx.set(host.subarray(b * T, b * T + T), b * meta.tokens + start);
    const t2 = performance.now();
    const f = await model.run(`fhat_${s}`, { idx: tokens, ...(fhat ? { fhat } : {}) }, { keep: ["fhat", "x_words"] });
    const next = f.outputs as Record<string, Tensor>;
    await dev.release(tokens);
    if (fhat) await releaseAll(dev, [fhat], next);
    fhat = next.fhat!;
    words = next.x_words;
    start += T;
    const t3 = performance.now();
    // a deferred device runs a step's work at its first read-back (the tokens): one stage
    if (dev.deferred) time.transformer += t3 - t0;
    else time.transformer += t1 - t0, time.sampling += t2 - t1, time.fhat += t3 - t2;
    o.onScale?.(s, S, t3 - t0);
  }
  const t4 = performance.now();
  await releaseAll(dev, [...Object.values(carry), ...(words ? [words] : [])], { fhat: fhat! });
  const fhatHost = await dev.read(fhat!);
  const img = (await model.run("decode", { fhat: fhat! })).outputs.img!;
  await dev.release(fhat!);
  time.decode = performance.now() - t4;
  checkFiniteOutput("f_hat", fhatHost.data, fhatHost.shape);
  checkFiniteOutput("img", img.data as Float32Array, img.shape);
  return { idx, fhat: fhatHost, img, guided, timings: time };
}

/** Frees device tensors no longer needed, except those still held by `live` (an entry may pass one through). */
async function releaseAll(
  dev: ModelDevice,
  dead: readonly Tensor[],
  live: Readonly<Record<string, Tensor>>,
): Promise<void> {
  const held = new Set(Object.values(live).map((t) => t.data));
  for (const t of new Set(dead)) if (!held.has(t.data)) await dev.release(t);
}

function pick(inputs: Record<string, Tensor>, specs: readonly { name: string }[]): Record<string, Tensor> {
  return Object.fromEntries(specs.map((s) => [s.name, inputs[s.name]!]).filter(([, v]) => v !== undefined));
}
