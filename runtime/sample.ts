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
  const order = new Int32Array(V), keys = V <= INDEX_LIMIT ? new Float64Array(V) : null, p = new Float64Array(V);
  for (let r = 0; r < rows; r++) {
    out[r] = sampleRow(g.subarray(r * V, r * V + V), options, uniforms[r]!, order, keys, p);
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
  packKeys(row, keys);
  keys.sort();
  for (let i = 0; i < V; i++) order[i] = keys[i]! % INDEX_LIMIT;
}

/** keys[i] = u(row[i])·2²¹ + i, u the order-preserving u32 of the value's bits (−0 as +0). */
function packKeys(row: Float32Array, keys: Float64Array): void {
  const bits = new Uint32Array(row.buffer, row.byteOffset, row.length);
  for (let i = 0; i < row.length; i++) {
    const b = row[i] === 0 ? 0 : bits[i]!; // −0 ties with +0, as in the comparator
    const u = b >= 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    keys[i] = u * INDEX_LIMIT + i;
  }
}

/**
 * The candidates of a top-k cut in `sortRow`'s order: returns `first` with order[first, V) the
 * indices of every logit ≥ the k-th largest (ties with it kept), ascending; order[0, first) is
 * left unspecified. With packed keys and 0 < topK < V, a selection finds the k-th largest key and
 * only the candidates are sorted (O(V + c log c) instead of O(V log V)); else the row is sorted.
 */
export function topOrder(row: Float32Array, topK: number, order: Int32Array, keys: Float64Array | null): number {
  const V = row.length, cut = topK > 0 && topK < V;
  if (!keys || !cut) {
    sortRow(row, order, keys);
    if (!cut) return 0;
    const kth = row[order[V - topK]!]!;
    let first = 0;
    while (first < V - 1 && row[order[first]!]! < kth) first++;
    return first;
  }
  packKeys(row, keys);
  select(keys, V - topK); // keys[V − topK, V): the topK largest keys
  // the k-th largest value's ties with smaller indices sit below V − topK: move them up to the rest
  const tie = Math.floor(keys[V - topK]! / INDEX_LIMIT) * INDEX_LIMIT;
  let first = V - topK;
  for (let i = first - 1; i >= 0; i--) {
    if (keys[i]! >= tie) {
      const k = keys[i]!;
      keys[i] = keys[--first]!, keys[first] = k;
    }
  }
  keys.subarray(first).sort();
  for (let i = first; i < V; i++) order[i] = keys[i]! % INDEX_LIMIT;
  return first;
}

/** Reorders the distinct keys a in place so that a[t] is the t-th smallest, smaller ones before it, larger after. */
function select(a: Float64Array, t: number): void {
  let lo = 0, hi = a.length - 1;
  const swap = (i: number, j: number) => {
    const x = a[i]!;
    a[i] = a[j]!, a[j] = x;
  };
  while (lo < hi) {
    const mid = (lo + hi) >>> 1; // median of three as the pivot
    if (a[mid]! < a[lo]!) swap(lo, mid);
    if (a[hi]! < a[lo]!) swap(lo, hi);
    if (a[hi]! < a[mid]!) swap(mid, hi);
    const pivot = a[mid]!;
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) swap(i++, j--);
    }
    // a[lo, j] ≤ pivot ≤ a[i, hi]; between them only the pivot itself (the keys are distinct)
    if (t <= j) hi = j;
    else if (t >= i) lo = i;
    else return;
  }
}

function sampleRow(
  row: Float32Array,
  { topK, topP }: SampleOptions,
  uniform: number,
  order: Int32Array,
  keys: Float64Array | null,
  p: Float64Array,
): number {
  const V = row.length;
  let first = topOrder(row, topK, order, keys); // order[first..] are the kept logits, ascending
  const max = row[order[V - 1]!]!;
  for (let j = first; j < V; j++) p[j] = Math.exp(row[order[j]!]! - max); // each weight once
  if (topP > 0) {
    let total = 0;
    for (let j = first; j < V; j++) total += p[j]!;
    let cum = 0;
    let cut = first;
    // the cumulative sum of non-negative terms never decreases: stop at the first past 1 − p
    for (let j = first; j < V - 1; j++) {
      cum += p[j]! / total;
      if (cum <= 1 - topP) cut = j + 1;
      else break;
    }
    first = cut;
  }
  let total = 0;
  for (let j = first; j < V; j++) total += p[j]!;
  let u = uniform * total;
  for (let j = V - 1; j >= first; j--) {
    u -= p[j]!;
    if (u < 0) return order[j]!;
  }
  return order[V - 1]!;
}
