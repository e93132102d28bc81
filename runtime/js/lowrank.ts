/**
 * @file Low-rank attention kernels: exp(s⟨q,k⟩) ≈ P(s⟨q,k⟩) = φ_q(q)·φ_k(k), so attention becomes
 * (φ_q(q)ᵀ S)[:Dv] / (φ_q(q)ᵀ S)[Dv] with S = Σ_j φ_k(k_j)[v_j, 1]. Features are computed per row
 * inside the kernels (never an [L, L] or [L, r] matrix); S is accumulated in float64.
 *
 * Monomials of degree ≤ g in d variables are enumerated in graded order: monomial i (i > 0) is
 * monomial parent[i] times x[variable[i]], with variables non-decreasing along a chain, so
 * φ_k(x)[i] = φ_k(x)[parent[i]] · x[variable[i]] costs one multiply each. The q side carries the
 * coefficient p_|α| · |α|!/α! · s^|α| of each monomial.
 *
 * Large blocks take a GEMM form through `gemmNT` (the WebAssembly SIMD GEMM when in use): per chunk
 * of at most `GEMM_CHUNK` rows, the features are built in float64 and stored as float32 (Fₖᵀ [r, n]
 * for keys, F_q·coef [n, r] for queries), the state update is ΔS = Fₖᵀ·[V | 1] ([r, Dv+1], one
 * float32 GEMM per chunk, added into the float64 S) and the read is F_q·S with S rounded to float32
 * once per block. Precision: with T = Σ_α |coef_α φ_q[α] φ_k[α]| ≤ P̄(β) = Σ_t |p_t| β^t per pair
 * (Cauchy–Schwarz) and the denominator Σ_j Ã_j ≥ (1−ε) e^{−β} per key, every float32 rounding
 * (features, coef, S, the GEMM's float32 sums of ≤ 512/4 + K/512 + 3 terms each) perturbs numerator
 * and denominator by at most c·u32·T relative, so the outputs move by at most
 * ≈ 2c·u32·P̄(β)e^{β}/(1−ε)·‖V‖∞ with c ≲ r + n/4 worst case (random-walk: ≈ √(r + n/4)). In the
 * paper regime (β = 0.5, r = 165) that is ≤ 3e-5·‖V‖∞ worst case against a bound 2ε/(1−ε)·‖V‖∞ of
 * 2e-3·‖V‖∞; the row form (float64 throughout) stays the reference and serves small blocks.
 */
import { attention, gemmBackend, gemmNT, type KeyRanges } from "./kernels.ts";

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
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let c = 0; c < d; c++) s += x[base + i * d + c]! ** 2;
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
  sign: number,
): void {
  const w = Dv + 1;
  for (let j = from; j < to; j++) {
    features(k, kb + j * D, table, f);
    const vo = vb + j * Dv;
    for (let i = 0; i < table.r; i++) {
      const fi = f[i]! * sign;
      const so = i * w;
      for (let c = 0; c < Dv; c++) S[so + c]! += fi * v[vo + c]!;
      S[so + Dv]! += fi;
    }
  }
}

/** out rows [from, to) of one head from S. */
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
    const o = qb / D * Dv + i * Dv;
    for (let c = 0; c < Dv; c++) out[o + c] = acc[c]! / acc[Dv]!;
  }
}

/** Which form the low-rank kernels use: "auto" (GEMM for large blocks when the WASM GEMM is in use), or forced. */
export type LowrankPath = "auto" | "rows" | "gemm";

let path: LowrankPath = "auto";

/** Selects the low-rank kernel form ("rows": float64 row loops; "gemm": `gemmNT` for every block). */
export function setLowrankPath(p: LowrankPath): void {
  path = p;
}

/** Blocks with at least this many multiply-adds (rows · r · (Dv+1)) take the GEMM form under "auto". */
export const LOWRANK_GEMM_MIN_MACS = 1 << 16;

/** Rows per GEMM of the GEMM form (bounds the float32 sums and the scratch memory). */
export const GEMM_CHUNK = 1024;

function useGemm(rows: number, r: number, w: number): boolean {
  if (path !== "auto") return path === "gemm";
  return rows * r * w >= LOWRANK_GEMM_MIN_MACS && gemmBackend() === "wasm";
}

/** Scratch of the GEMM form, grown as needed. */
class Scratch {
  f64 = new Float64Array(0);
  a = new Float32Array(0);
  b = new Float32Array(0);
  res = new Float32Array(0);
  grow(r: number, w: number, n: number): void {
    if (this.f64.length < r * n) this.f64 = new Float64Array(r * n), this.a = new Float32Array(r * n);
    if (this.b.length < w * Math.max(n, r)) this.b = new Float32Array(w * Math.max(n, r));
    if (this.res.length < Math.max(r, n) * w) this.res = new Float32Array(Math.max(r, n) * w);
  }
}

/**
 * GEMM form of `accumulate`: S += sign · Σ φ_k(k_j)[v_j, 1] over rows [from, to), in chunks of
 * `GEMM_CHUNK` rows, each ΔS = Fₖᵀ [r, n] · ([V | 1]ᵀ [w, n])ᵀ one float32 GEMM added into S. With
 * `deltas`, the sum of the chunks' float32 results is returned as well (to subtract the very same
 * values later).
 */
function accumulateGemm(
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
  sc: Scratch,
  delta: Float64Array | null,
): void {
  const r = table.r, w = Dv + 1, { parent, variable } = table;
  for (let c0 = from; c0 < to; c0 += GEMM_CHUNK) {
    const n = Math.min(GEMM_CHUNK, to - c0);
    sc.grow(r, w, n);
    const F = sc.f64, A = sc.a, B = sc.b, res = sc.res;
    // Fₖᵀ [r, n] in float64 (monomial by monomial, contiguous over keys), then rounded to float32.
    F.fill(1, 0, n);
    for (let i = 1; i < r; i++) {
      const o = i * n, po = parent[i]! * n, x = kb + c0 * D + variable[i]!;
      for (let j = 0; j < n; j++) F[o + j] = F[po + j]! * k[x + j * D]!;
    }
    A.set(F.subarray(0, r * n));
    // [V | 1]ᵀ [w, n].
    const vo = vb + c0 * Dv;
    for (let c = 0; c < Dv; c++) for (let j = 0; j < n; j++) B[c * n + j] = v[vo + j * Dv + c]!;
    B.fill(1, Dv * n, w * n);
    gemmNT(A.subarray(0, r * n), r, n, B.subarray(0, w * n), w, null, res);
    for (let m = 0; m < r * w; m++) S[m]! += res[m]!;
    if (delta) { for (let m = 0; m < r * w; m++) delta[m]! += res[m]!; }
  }
}

/** GEMM form of `readRows`: out rows [from, to) of one head, OUT = (F_q·coef) [n, r] · S [r, w]. */
function readGemm(
  S: Float64Array,
  q: Float32Array,
  qb: number,
  out: Float32Array,
  from: number,
  to: number,
  D: number,
  Dv: number,
  table: FeatureTable,
  sc: Scratch,
): void {
  const r = table.r, w = Dv + 1, { parent, variable, coef } = table;
  sc.grow(r, w, Math.min(GEMM_CHUNK, to - from));
  // Sᵀ [w, r] in float32, once per block.
  const ST = new Float32Array(w * r);
  for (let m = 0; m < r; m++) for (let c = 0; c < w; c++) ST[c * r + m] = S[m * w + c]!;
  const ob = qb / D * Dv;
  for (let c0 = from; c0 < to; c0 += GEMM_CHUNK) {
    const n = Math.min(GEMM_CHUNK, to - c0);
    const F = sc.f64, A = sc.a, res = sc.res;
    // φ_q [r, n] in float64, then F_q·coef [n, r] in float32 (transposed while scaling).
    F.fill(1, 0, n);
    for (let i = 1; i < r; i++) {
      const o = i * n, po = parent[i]! * n, x = qb + c0 * D + variable[i]!;
      for (let j = 0; j < n; j++) F[o + j] = F[po + j]! * q[x + j * D]!;
    }
    for (let i = 0; i < r; i++) {
      const o = i * n, ci = coef[i]!;
      for (let j = 0; j < n; j++) A[j * r + i] = F[o + j]! * ci;
    }
    gemmNT(A.subarray(0, n * r), n, r, ST, w, null, res);
    for (let j = 0; j < n; j++) {
      const o = ob + (c0 + j) * Dv, ro = j * w, den = res[ro + Dv]!;
      for (let c = 0; c < Dv; c++) out[o + c] = res[ro + c]! / den;
    }
  }
}

/**
 * q [BH, Tq, D], k/v [BH, Tk, D|Dv] -> [BH, Tq, Dv]. With `sizes` (tokens per scale, Tq = Tk) the
 * mask is block-causal over scales (window ∞) or a window of scales; without, every query sees all
 * keys. Per head, the guard measures β = |s|·max‖q‖·max‖k‖ and computes the head exactly (counted)
 * when it exceeds the compiled `beta`.
 */
export function lowrankAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  BH: number,
  Tq: number,
  Tk: number,
  D: number,
  Dv: number,
  scale: number,
  sizes: readonly number[] | null,
  window: number,
  table: FeatureTable,
  beta: number,
  exactRanges: KeyRanges,
): Float32Array {
  const out = new Float32Array(BH * Tq * Dv), w = Dv + 1, sc = new Scratch();
  const S = new Float64Array(table.r * w), f = new Float64Array(table.r), acc = new Float64Array(w);
  const starts = sizes ? [0, ...sizes.map((_, i) => sizes.slice(0, i + 1).reduce((a, b) => a + b, 0))] : [0, Tk];
  for (let bh = 0; bh < BH; bh++) {
    const qb = bh * Tq * D, kb = bh * Tk * D, vb = bh * Tk * Dv;
    guardStats.checks++;
    if (Math.abs(scale) * maxRowNorm(q, qb, Tq, D) * maxRowNorm(k, kb, Tk, D) > beta * (1 + SLACK)) {
      guardStats.fallbacks++;
      const one = attention(
        q.subarray(qb, qb + Tq * D),
        k.subarray(kb, kb + Tk * D),
        v.subarray(vb, vb + Tk * Dv),
        1,
        Tq,
        Tk,
        D,
        Dv,
        scale,
        exactRanges,
      );
      out.set(one, bh * Tq * Dv);
      continue;
    }
    S.fill(0);
    if (!sizes) {
      if (useGemm(Tk, table.r, w)) accumulateGemm(S, k, v, kb, vb, 0, Tk, D, Dv, table, sc, null);
      else accumulate(S, k, v, kb, vb, 0, Tk, D, Dv, table, f, 1);
      if (useGemm(Tq, table.r, w)) readGemm(S, q, qb, out, 0, Tq, D, Dv, table, sc);
      else readRows(S, q, qb, out, 0, Tq, D, Dv, table, f, acc);
      continue;
    }
    // Scales added by the GEMM form keep their float32 contribution (only with a finite window),
    // so that leaving the window subtracts exactly what was added.
    const deltas: (Float64Array | null)[] = [];
    for (let s = 0; s < sizes.length; s++) {
      const from = starts[s]!, to = starts[s + 1]!;
      if (useGemm(to - from, table.r, w)) {
        const delta = Number.isFinite(window) ? new Float64Array(S.length) : null;
        accumulateGemm(S, k, v, kb, vb, from, to, D, Dv, table, sc, delta);
        deltas.push(delta);
      } else {
        accumulate(S, k, v, kb, vb, from, to, D, Dv, table, f, 1);
        deltas.push(null);
      }
      if (s - window >= 0) {
        const old = deltas[s - window];
        if (old) {
          for (let m = 0; m < S.length; m++) S[m]! -= old[m]!;
          deltas[s - window] = null;
        } else accumulate(S, k, v, kb, vb, starts[s - window]!, starts[s - window + 1]!, D, Dv, table, f, -1);
      }
      if (useGemm(to - from, table.r, w)) readGemm(S, q, qb, out, from, to, D, Dv, table, sc);
      else readRows(S, q, qb, out, from, to, D, Dv, table, f, acc);
    }
  }
  return out;
}

/**
 * Generation state: S' [BH, r, Dv+1] = S + Σ_j φ_k(k_j)[v_j, 1] over the new keys k [BH, T, D]. The
 * guard checks every key against the compiled key norm (a violation cannot fall back: the state
 * keeps no keys, so it is an error).
 */
export function lowrankState(
  k: Float32Array,
  v: Float32Array,
  prev: Float32Array | null,
  BH: number,
  T: number,
  D: number,
  Dv: number,
  table: FeatureTable,
  keyNorm: number,
  what: string,
): Float32Array {
  const w = table.r * (Dv + 1);
  const out = new Float32Array(BH * w);
  const S = new Float64Array(w), f = new Float64Array(table.r), sc = new Scratch();
  for (let bh = 0; bh < BH; bh++) {
    const kn = maxRowNorm(k, bh * T * D, T, D);
    if (kn > keyNorm * (1 + SLACK)) {
      throw new GuardError(
        `${what}: a key has norm ${kn.toPrecision(4)} > ${
          keyNorm.toPrecision(4)
        }, the bound the low-rank state was compiled for (recompile with the checkpoint you run, or with --attention exact)`,
      );
    }
    if (prev) S.set(prev.subarray(bh * w, bh * w + w));
    else S.fill(0);
    if (useGemm(T, table.r, Dv + 1)) accumulateGemm(S, k, v, bh * T * D, bh * T * Dv, 0, T, D, Dv, table, sc, null);
    else accumulate(S, k, v, bh * T * D, bh * T * Dv, 0, T, D, Dv, table, f, 1);
    out.set(S, bh * w);
  }
  return out;
}

/** Reads queries q [BH, T, D] against the state [BH, r, Dv+1]; the guard checks |s|·‖q‖·keyNorm ≤ β. */
export function lowrankRead(
  q: Float32Array,
  state: Float32Array,
  BH: number,
  T: number,
  D: number,
  Dv: number,
  scale: number,
  table: FeatureTable,
  beta: number,
  keyNorm: number,
  what: string,
): Float32Array {
  const w = table.r * (Dv + 1);
  const out = new Float32Array(BH * T * Dv);
  const S = new Float64Array(w), f = new Float64Array(table.r), acc = new Float64Array(Dv + 1), sc = new Scratch();
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
    S.set(state.subarray(bh * w, bh * w + w));
    if (useGemm(T, table.r, Dv + 1)) readGemm(S, q, bh * T * D, out, 0, T, D, Dv, table, sc);
    else readRows(S, q, bh * T * D, out, 0, T, D, Dv, table, f, acc);
  }
  return out;
}
