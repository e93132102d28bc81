/**
 * @file Low-rank attention kernels: exp(s⟨q,k⟩) ≈ P(s⟨q,k⟩) = φ_q(q)·φ_k(k), so attention becomes
 * (φ_q(q)ᵀ S)[:Dv] / (φ_q(q)ᵀ S)[Dv] with S = Σ_j φ_k(k_j)[v_j, 1]. Features are computed per row
 * or per slab of rows inside the kernels (never an [L, L] or [L, r] matrix); S is kept in float64.
 *
 * Monomials of degree ≤ g in d variables are enumerated in graded order: monomial i (i > 0) is
 * monomial parent[i] times x[variable[i]], with variables non-decreasing along a chain, so
 * φ_k(x)[i] = φ_k(x)[parent[i]] · x[variable[i]] costs one multiply each. The q side carries the
 * coefficient p_|α| · |α|!/α! · s^|α| of each monomial.
 *
 * Large blocks take the WebAssembly SIMD form (wasm/lowrank_module.ts) when the WASM GEMM is in
 * use: features in float32 four rows at a time, per slab of ≤ `SLAB_ROWS` keys one float32 product
 * ΔS = Fₖᵀ·[V | 1] added into the float64 S (no float32 sum spans more than a slab, which is why S
 * stays float64: one float32 sum over all L keys would cost ≈ L·u32 relative, 3e-3 at 2048 px), and
 * the read F_q·S' with S' = coef ∘ S rounded to float32 once per state, on all threads. Precision:
 * with T = Σ_α |coef_α φ_q[α] φ_k[α]| ≤ P̄(β) = Σ_t |p_t| β^t per pair (Cauchy–Schwarz) and the
 * denominator Σ_j Ã_j ≥ (1−ε) e^{−β} per key, the float32 roundings (≤ g per feature on each side,
 * a slab sum of ≤ SLAB_ROWS products, S', a read sum of r products in blocks of READ_BLOCK) perturb
 * numerator and denominator by at most c·u32·T relative with
 * c = `gemmRoundings(r, g)` = 2g + SLAB_ROWS + 2 + min(r, READ_BLOCK) + ⌈r / READ_BLOCK⌉, so the
 * outputs move by at most ≈ 2c·u32·P̄(β)e^{β}/(1−ε)·‖V‖∞ worst case (random-walk: ≈ √c times less),
 * plus one output rounding. In the paper regime (β = 0.5, r = 165, g = 3: c = 302) that is
 * ≤ 1e-4·‖V‖∞ against a bound 2ε/(1−ε)·‖V‖∞ of 2e-3·‖V‖∞; the row form (float64 throughout) stays
 * the reference and serves small blocks.
 */
import type { KernelArgs, KernelName } from "../kernels.ts";
import { attention, gemmBackend } from "./kernels.ts";
import { type AccumulateSegment, accumulateWasm, type ReadSegment, readWasm } from "./wasm/lowrank.ts";
import { KB, READ_BLOCK } from "./wasm/lowrank_module.ts";

/** The argument record of kernel `K` on this target (`../kernels.ts`). */
type Args<K extends KernelName> = KernelArgs<K, Float32Array, Int32Array>;

/** The monomial table of one (d, g) and the q-side coefficients of one polynomial and logit scale. */
export interface FeatureTable {
  readonly d: number;
  readonly r: number;
  readonly parent: Int32Array;
  readonly variable: Int32Array;
  readonly coef: Float64Array;
}

/** Builds the table for head dim d, P(x) = Σ coeffs[t] x^t, logit scale s. */
export function featureTable(d: number, coeffs: readonly number[], scale: number): FeatureTable {
  const g = coeffs.length - 1;
  const parent = [0], variable = [0], degree = [0], run = [0], multinomial = [1];
  let levelStart = 0;
  for (let t = 1; t <= g; t++) {
    const levelEnd = parent.length;
    for (let m = levelStart; m < levelEnd; m++) {
      const lastVar = t === 1 ? 0 : variable[m]!;
      for (let v = lastVar; v < d; v++) {
        const sameRun = t > 1 && v === variable[m] ? run[m]! + 1 : 1;
        parent.push(m), variable.push(v), degree.push(t), run.push(sameRun);
        multinomial.push((multinomial[m]! * t) / sameRun); // |α|!/α! grows by t/α_v
      }
    }
    levelStart = levelEnd;
  }
  const coef = Float64Array.from(multinomial, (mu, i) => coeffs[degree[i]!]! * mu * scale ** degree[i]!);
  return { d, r: parent.length, parent: Int32Array.from(parent), variable: Int32Array.from(variable), coef };
}

/** Monomials of x[off..off+d] into out[0..r). */
export function features(x: ArrayLike<number>, off: number, table: FeatureTable, out: Float64Array): void {
  out[0] = 1;
  for (let i = 1; i < table.r; i++) out[i] = out[table.parent[i]!]! * x[off + table.variable[i]!]!;
}

/** Counts of the run-time guard: heads checked, and heads that fell back to exact attention. */
export const guardStats = { checks: 0, fallbacks: 0 };

/** A bound the compiled kernel assumed was violated and no exact fallback exists (state form). */
export class GuardError extends Error {
  override name = "GuardError";
}

/** Relative slack for float32 rounding of normalised vectors when checking the compiled β. */
const SLACK = 1e-5;

function maxRowNorm(x: Float32Array, base: number, rows: number, d: number): number {
  let m = 0;
  for (let i = base, end = base + rows * d; i < end; i += d) {
    let s = 0;
    for (let c = i, e = i + d; c < e; c++) {
      const t = x[c]!;
      s += t * t;
    }
    m = Math.max(m, s);
  }
  return Math.sqrt(m);
}

/** Adds Σ φ_k(k_j)[v_j, 1] over rows [from, to) of one head into S [r, Dv+1]. */
function accumulate(
  S: Float64Array,
  k: Float32Array,
  v: Float32Array,
  kb: number,
  vb: number,
  from: number,
  to: number,
  D: number,
  Dv: number,
  table: FeatureTable,
  f: Float64Array,
): void {
  const w = Dv + 1;
  for (let j = from; j < to; j++) {
    features(k, kb + j * D, table, f);
    const vo = vb + j * Dv;
    for (let i = 0; i < table.r; i++) {
      const fi = f[i]!;
      const so = i * w;
      for (let c = 0; c < Dv; c++) S[so + c]! += fi * v[vo + c]!;
      S[so + Dv]! += fi;
    }
  }
}

/** out rows [from, to) (at ob, rows of Dv) of the queries at qb (rows of D) from S. */
function readRows(
  S: Float64Array,
  q: Float32Array,
  qb: number,
  out: Float32Array,
  from: number,
  to: number,
  D: number,
  Dv: number,
  table: FeatureTable,
  f: Float64Array,
  acc: Float64Array,
  ob: number,
): void {
  const w = Dv + 1;
  for (let i = from; i < to; i++) {
    features(q, qb + i * D, table, f);
    acc.fill(0);
    for (let m = 0; m < table.r; m++) {
      const fm = f[m]! * table.coef[m]!;
      const so = m * w;
      for (let c = 0; c <= Dv; c++) acc[c]! += fm * S[so + c]!;
    }
    const o = ob + i * Dv;
    for (let c = 0; c < Dv; c++) out[o + c] = acc[c]! / acc[Dv]!;
  }
}

/** Which form the low-rank kernels use: "auto" (WebAssembly for large blocks when the WASM GEMM is in use), or forced. */
export type LowrankPath = "auto" | "rows" | "gemm";

let path: LowrankPath = "auto";

/**
 * Selects the low-rank kernel form ("rows": float64 row loops; "gemm": the WebAssembly SIMD form
 * for every block, where WebAssembly SIMD exists).
 */
export function setLowrankPath(p: LowrankPath): void {
  path = p;
}

/**
 * Blocks with at least this many multiply-adds over all heads (BH · rows · r · (Dv+1)) take the
 * WebAssembly form under "auto" (one call serves every head; the full-sequence and the state forms
 * decide a scale alike).
 */
export const LOWRANK_GEMM_MIN_MACS = 1 << 16;

/** Rows per float32 slab of the WebAssembly form (bounds its float32 sums). */
export const SLAB_ROWS = KB;

/**
 * Float32 roundings c of one output term in the WebAssembly form (file comment): g per feature on
 * each side, a slab sum with its products, S', and the read's products and block sums.
 */
export function gemmRoundings(r: number, g: number): number {
  return 2 * g + SLAB_ROWS + 2 + Math.min(r, READ_BLOCK) + Math.ceil(r / READ_BLOCK);
}

function useGemm(rows: number, r: number, w: number): boolean {
  if (path !== "auto") return path === "gemm";
  return rows * r * w >= LOWRANK_GEMM_MIN_MACS && gemmBackend() === "wasm";
}

/** Accumulate segments: the WebAssembly kernels, or the row form where they are unavailable. */
function accumulateAll(
  k: Float32Array,
  v: Float32Array,
  D: number,
  Dv: number,
  table: FeatureTable,
  segs: AccumulateSegment[],
): void {
  if (segs.length === 0 || accumulateWasm(k, v, D, Dv, table, segs)) return;
  const f = new Float64Array(table.r);
  for (const s of segs) accumulate(s.into, k, v, s.k, s.v, 0, s.n, D, Dv, table, f);
}

/** Read segments: the WebAssembly kernels, or the row form where they are unavailable. */
function readAll(
  q: Float32Array,
  out: Float32Array,
  D: number,
  Dv: number,
  table: FeatureTable,
  segs: ReadSegment[],
): void {
  if (segs.length === 0 || readWasm(q, out, D, Dv, table, segs)) return;
  const f = new Float64Array(table.r), acc = new Float64Array(Dv + 1);
  for (const s of segs) readRows(s.S, q, s.q, out, 0, s.n, D, Dv, table, f, acc, s.o);
}

/**
 * q [BH, Tq, D], k/v [BH, Tk, D|Dv] -> [BH, Tq, Dv]. With `sizes` (tokens per scale, Tq = Tk) the
 * mask is block-causal over scales (window ∞) or a window of scales; without, every query sees all
 * keys. Per head, the guard measures β = |s|·max‖q‖·max‖k‖ and computes the head exactly (counted)
 * when it exceeds the compiled `beta`.
 *
 * All heads go through two passes: every scale's ΔS (float64 [r, Dv+1]; WebAssembly jobs for the
 * large scales, all heads at once), then per head the running sum over the window, read by the
 * scale's queries (WebAssembly jobs for the large scales, again all heads at once).
 */
export function lowrankAttention(
  { q, k, v, BH, Tq, Tk, D, Dv, scale, sizes, window, table, beta, exactRanges }: Args<"lowrankAttention">,
): Float32Array {
  const out = new Float32Array(BH * Tq * Dv), w = Dv + 1, r = table.r;
  const f = new Float64Array(r), acc = new Float64Array(w);
  // key blocks and query blocks: the scales, or all keys and all queries
  const starts = sizes ? [0, ...sizes.map((_, i) => sizes.slice(0, i + 1).reduce((a, b) => a + b, 0))] : null;
  const keys = starts ? sizes!.map((_, s) => [starts[s]!, starts[s + 1]!] as const) : [[0, Tk] as const];
  const queries = starts ? keys : [[0, Tq] as const];
  const span = sizes ? window : Infinity;
  const heads: number[] = [];
  for (let bh = 0; bh < BH; bh++) {
    const qb = bh * Tq * D, kb = bh * Tk * D, vb = bh * Tk * Dv;
    guardStats.checks++;
    if (!(Math.abs(scale) * maxRowNorm(q, qb, Tq, D) * maxRowNorm(k, kb, Tk, D) > beta * (1 + SLACK))) {
      heads.push(bh);
      continue;
    }
    guardStats.fallbacks++;
    const one = attention({
      q: q.subarray(qb, qb + Tq * D),
      k: k.subarray(kb, kb + Tk * D),
      v: v.subarray(vb, vb + Tk * Dv),
      BH: 1,
      Tq,
      Tk,
      D,
      Dv,
      scale,
      ranges: exactRanges,
    });
    out.set(one, bh * Tq * Dv);
  }
  // ΔS of every (head, key block)
  const deltas = heads.map(() => keys.map(() => new Float64Array(r * w)));
  const accSegs: AccumulateSegment[] = [];
  heads.forEach((bh, h) => {
    keys.forEach(([from, to], b) => {
      const kb = bh * Tk * D, vb = bh * Tk * Dv, into = deltas[h]![b]!;
      if (useGemm(BH * (to - from), r, w)) accSegs.push({ k: kb + from * D, v: vb + from * Dv, n: to - from, into });
      else accumulate(into, k, v, kb, vb, from, to, D, Dv, table, f);
    });
  });
  accumulateAll(k, v, D, Dv, table, accSegs);
  // S_s = S_{s−1} + ΔS_s (− ΔS_{s−window}) of each query block, then its reads
  const readSegs: ReadSegment[] = [];
  for (let h = 0; h < heads.length; h++) {
    const bh = heads[h]!, qb = bh * Tq * D, ob = bh * Tq * Dv, dh = deltas[h]!;
    let prev = new Float64Array(r * w);
    for (let s = 0; s < queries.length; s++) {
      const [from, to] = queries[s]!, add = dh[s]!, S = new Float64Array(r * w);
      for (let m = 0; m < S.length; m++) S[m] = prev[m]! + add[m]!;
      if (s - span >= 0) {
        const old = dh[s - span]!;
        for (let m = 0; m < S.length; m++) S[m]! -= old[m]!;
      }
      if (useGemm(BH * (to - from), r, w)) readSegs.push({ q: qb + from * D, o: ob + from * Dv, n: to - from, S });
      else readRows(S, q, qb + from * D, out, 0, to - from, D, Dv, table, f, acc, ob + from * Dv);
      prev = S;
    }
  }
  readAll(q, out, D, Dv, table, readSegs);
  return out;
}

/**
 * Generation state: S' [BH, r, Dv+1] = S + Σ_j φ_k(k_j)[v_j, 1] over the new keys k [BH, T, D]. The
 * guard checks every key against the compiled key norm (a violation cannot fall back: the state
 * keeps no keys, so it is an error).
 */
export function lowrankState(
  { k, v, prev, BH, T, D, Dv, table, keyNorm, what }: Args<"lowrankState">,
): Float32Array {
  const w = table.r * (Dv + 1);
  for (let bh = 0; bh < BH; bh++) {
    const kn = maxRowNorm(k, bh * T * D, T, D);
    if (kn > keyNorm * (1 + SLACK)) {
      throw new GuardError(
        `${what}: a key has norm ${kn.toPrecision(4)} > ${
          keyNorm.toPrecision(4)
        }, the bound the low-rank state was compiled for (recompile with the checkpoint you run, or with --attention exact)`,
      );
    }
  }
  const S = Array.from(
    { length: BH },
    (_, bh) => prev ? Float64Array.from(prev.subarray(bh * w, bh * w + w)) : new Float64Array(w),
  );
  if (useGemm(BH * T, table.r, Dv + 1)) {
    accumulateAll(k, v, D, Dv, table, S.map((into, bh) => ({ k: bh * T * D, v: bh * T * Dv, n: T, into })));
  } else {
    const f = new Float64Array(table.r);
    S.forEach((into, bh) => accumulate(into, k, v, bh * T * D, bh * T * Dv, 0, T, D, Dv, table, f));
  }
  const out = new Float32Array(BH * w);
  S.forEach((s, bh) => out.set(s, bh * w));
  return out;
}

/** Reads queries q [BH, T, D] against the state [BH, r, Dv+1]; the guard checks |s|·‖q‖·keyNorm ≤ β. */
export function lowrankRead(
  { q, state, BH, T, D, Dv, scale, table, beta, keyNorm, what }: Args<"lowrankRead">,
): Float32Array {
  const w = table.r * (Dv + 1);
  for (let bh = 0; bh < BH; bh++) {
    guardStats.checks++;
    const b = Math.abs(scale) * maxRowNorm(q, bh * T * D, T, D) * keyNorm;
    if (b > beta * (1 + SLACK)) {
      throw new GuardError(
        `${what}: logits reach ${b.toPrecision(4)} > β = ${
          beta.toPrecision(4)
        }, the bound the low-rank state was compiled for (recompile with the checkpoint you run, or with --attention exact)`,
      );
    }
  }
  const out = new Float32Array(BH * T * Dv);
  const segs = Array.from({ length: BH }, (_, bh) => ({
    q: bh * T * D,
    o: bh * T * Dv,
    n: T,
    S: Float64Array.from(state.subarray(bh * w, bh * w + w)),
  }));
  if (useGemm(BH * T, table.r, Dv + 1)) readAll(q, out, D, Dv, table, segs);
  else {
    const f = new Float64Array(table.r), acc = new Float64Array(Dv + 1);
    for (const s of segs) readRows(s.S, q, s.q, out, 0, s.n, D, Dv, table, f, acc, s.o);
  }
  return out;
}
