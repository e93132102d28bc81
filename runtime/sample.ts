/** @file Guided logits and top-k / top-p sampling as the official `sample_with_top_k_top_p_`, with a seeded generator. */

/** A seeded uniform generator in [0, 1) (PCG-XSH-RR 32-bit). Same seed ⇒ same stream. */
export class Generator {
  #state: bigint;
  static readonly #MUL = 6364136223846793005n;
  static readonly #INC = 1442695040888963407n;
  constructor(seed: number) {
    this.#state = 0n;
    this.#next();
    this.#state = (this.#state + BigInt.asUintN(64, BigInt(Math.trunc(seed)))) & 0xffffffffffffffffn;
    this.#next();
  }

  #next(): number {
    const old = this.#state;
    this.#state = (old * Generator.#MUL + Generator.#INC) & 0xffffffffffffffffn;
    const xorshifted = Number(((old >> 18n) ^ old) >> 27n & 0xffffffffn);
    const rot = Number(old >> 59n);
    return ((xorshifted >>> rot) | (xorshifted << ((32 - rot) & 31))) >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    return (this.#next() * 2 ** 21 + (this.#next() >>> 11)) / 2 ** 53;
  }
}

/**
 * Classifier-free guidance: logits [2B, T, V] (conditional rows first) -> (1+t)·cond − t·uncond
 * [B, T, V], in float32 as the official code computes it.
 */
export function guide(logits: Float32Array, B: number, rowSize: number, t: number): Float32Array {
  const out = new Float32Array(B * rowSize);
  const a = Math.fround(1 + t), b = Math.fround(t);
  for (let i = 0; i < out.length; i++) {
    out[i] = Math.fround(Math.fround(a * logits[i]!) - Math.fround(b * logits[B * rowSize + i]!));
  }
  return out;
}

/** Logits that cannot be sampled (NaN or infinite). */
export class NonFiniteLogitsError extends Error {
  override name = "NonFiniteLogitsError";
}

/** Throws NonFiniteLogitsError naming the first NaN or infinity of guided logits g [rows, V]. */
export function checkFiniteLogits(g: Float32Array, V: number): void {
  const bad = g.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) {
    throw new NonFiniteLogitsError(
      `Guided logit ${g[bad]} at token ${Math.floor(bad / V)}, class ${
        bad % V
      }: sampling needs finite logits (run with --check-numerics to find the node that produced it)`,
    );
  }
}

/** A final output (image, f̂, logits) holding NaN or infinity. */
export class NonFiniteOutputError extends Error {
  override name = "NonFiniteOutputError";
}

/**
 * Throws NonFiniteOutputError when output `name` [shape] holds NaN or ±Infinity, naming how many and
 * where the first is: an image with NaN-derived pixels is an error, never a silent PNG.
 */
export function checkFiniteOutput(name: string, data: ArrayLike<number>, shape: readonly number[]): void {
  let count = 0, first = -1;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) count++, first = first < 0 ? i : first;
  }
  if (count === 0) return;
  const at: number[] = [];
  for (let rest = first, k = shape.length - 1; k >= 0; k--) {
    at.unshift(rest % shape[k]!), rest = Math.floor(rest / shape[k]!);
  }
  throw new NonFiniteOutputError(
    `output "${name}" has ${count} non-finite value${count === 1 ? "" : "s"} of ${data.length} (first: ${
      data[first]
    } at [${at.join(", ")}]); run with --check-numerics to name the node that produced the first one`,
  );
}

/** Sampling settings; 0 disables top-k or top-p, as in the official code. */
export interface SampleOptions {
  readonly topK: number;
  readonly topP: number;
}

/**
 * Draws one token per row of `g` [rows, V]: keep logits ≥ the k-th largest (ties kept), then drop
 * the smallest whose ascending cumulative probability is ≤ 1 − p (the largest always stays), then
 * sample from the softmax of what remains. Row r uses the r-th draw of `gen`.
 */
export function sampleRows(g: Float32Array, V: number, options: SampleOptions, gen: Generator): Int32Array {
  return sampleRowsWith(g, V, options, Float64Array.from({ length: g.length / V }, () => gen.uniform()));
}

/** `sampleRows` with the uniforms given: row r of `g` [rows, V] samples with `uniforms[r]` in [0, 1). */
export function sampleRowsWith(
  g: Float32Array,
  V: number,
  options: SampleOptions,
  uniforms: ArrayLike<number>,
): Int32Array {
  const rows = g.length / V;
  if (uniforms.length !== rows) throw new RangeError(`sampleRowsWith: ${uniforms.length} uniforms for ${rows} rows`);
  checkFiniteLogits(g, V);
  const out = new Int32Array(rows);
  const order = new Int32Array(V), keys = V <= INDEX_LIMIT ? new Float64Array(V) : null;
  for (let r = 0; r < rows; r++) {
    out[r] = sampleRow(g.subarray(r * V, r * V + V), options, uniforms[r]!, order, keys);
  }
  return out;
}

/**
 * The seed of image `index` of a run seeded `runSeed`: a SplitMix64 mix of both, cut to 53 bits so it
 * is a safe integer ≥ 0 (recorded as is, and usable as `--seed` of a one-image generation). It depends
 * on nothing else, so an image is the same whatever the batch, shard or order it is made in.
 */
export function imageSeed(runSeed: number, index: number): number {
  if (!Number.isSafeInteger(runSeed) || !Number.isSafeInteger(index) || index < 0) {
    throw new RangeError(`imageSeed: run seed ${runSeed} and index ${index} must be safe integers, index ≥ 0`);
  }
  const M = 0xffffffffffffffffn;
  let z = (BigInt.asUintN(64, BigInt(runSeed)) + (BigInt(index) + 1n) * 0x9e3779b97f4a7c15n) & M;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
  return Number((z ^ (z >> 31n)) >> 11n);
}

/** Vocabularies up to this size sort packed (value, index) keys; larger ones use a comparator. */
const INDEX_LIMIT = 2 ** 21;

/**
 * order = the indices of row sorted ascending by value, ties by index. With `keys`, each key is
 * (the value's bits mapped to an order-preserving u32, −0 as +0)·2²¹ + index, exact in float64
 * (< 2⁵³), so the typed array's own numeric sort gives the same order as the comparator.
 */
export function sortRow(row: Float32Array, order: Int32Array, keys: Float64Array | null): void {
  const V = row.length;
  if (!keys) {
    for (let i = 0; i < V; i++) order[i] = i;
    order.sort((a, b) => row[a]! - row[b]! || a - b);
    return;
  }
  const bits = new Uint32Array(row.buffer, row.byteOffset, V);
  for (let i = 0; i < V; i++) {
    const b = row[i] === 0 ? 0 : bits[i]!; // −0 ties with +0, as in the comparator
    const u = b >= 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    keys[i] = u * INDEX_LIMIT + i;
  }
  keys.sort();
  for (let i = 0; i < V; i++) order[i] = keys[i]! % INDEX_LIMIT;
}

function sampleRow(
  row: Float32Array,
  { topK, topP }: SampleOptions,
  uniform: number,
  order: Int32Array,
  keys: Float64Array | null,
): number {
  const V = row.length;
  sortRow(row, order, keys); // ascending
  const kth = topK > 0 && topK < V ? row[order[V - topK]!]! : -Infinity;
  let first = 0; // order[first..] are the kept logits, ascending
  while (first < V - 1 && row[order[first]!]! < kth) first++;
  const max = row[order[V - 1]!]!;
  if (topP > 0) {
    let total = 0;
    for (let j = first; j < V; j++) total += Math.exp(row[order[j]!]! - max);
    let cum = 0;
    let cut = first;
    for (let j = first; j < V - 1; j++) {
      cum += Math.exp(row[order[j]!]! - max) / total;
      if (cum <= 1 - topP) cut = j + 1;
    }
    first = cut;
  }
  let total = 0;
  for (let j = first; j < V; j++) total += Math.exp(row[order[j]!]! - max);
  let u = uniform * total;
  for (let j = V - 1; j >= first; j--) {
    u -= Math.exp(row[order[j]!]! - max);
    if (u < 0) return order[j]!;
  }
  return order[V - 1]!;
}
