/**
 * @file Low-rank attention kernels: exp(s⟨q,k⟩) ≈ P(s⟨q,k⟩) = φ_q(q)·φ_k(k), so attention becomes
 * (φ_q(q)ᵀ S)[:Dv] / (φ_q(q)ᵀ S)[Dv] with S = Σ_j φ_k(k_j)[v_j, 1]. Features are computed per row
 * inside the kernels (never an [L, L] or [L, r] matrix); S is accumulated in float64.
 *
 * Monomials of degree ≤ g in d variables are enumerated in graded order: monomial i (i > 0) is
 * monomial parent[i] times x[variable[i]], with variables non-decreasing along a chain, so
 * φ_k(x)[i] = φ_k(x)[parent[i]] · x[variable[i]] costs one multiply each. The q side carries the
 * coefficient p_|α| · |α|!/α! · s^|α| of each monomial.
 */
import { attention, type KeyRanges } from "./kernels.ts";

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
  const out = new Float32Array(BH * Tq * Dv);
  const S = new Float64Array(table.r * (Dv + 1)), f = new Float64Array(table.r), acc = new Float64Array(Dv + 1);
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
      accumulate(S, k, v, kb, vb, 0, Tk, D, Dv, table, f, 1);
      readRows(S, q, qb, out, 0, Tq, D, Dv, table, f, acc);
      continue;
    }
    for (let s = 0; s < sizes.length; s++) {
      accumulate(S, k, v, kb, vb, starts[s]!, starts[s + 1]!, D, Dv, table, f, 1);
      if (s - window >= 0) {
        accumulate(S, k, v, kb, vb, starts[s - window]!, starts[s - window + 1]!, D, Dv, table, f, -1);
      }
      readRows(S, q, qb, out, starts[s]!, starts[s + 1]!, D, Dv, table, f, acc);
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
  const S = new Float64Array(w), f = new Float64Array(table.r);
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
    accumulate(S, k, v, bh * T * D, bh * T * Dv, 0, T, D, Dv, table, f, 1);
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
  const S = new Float64Array(w), f = new Float64Array(table.r), acc = new Float64Array(Dv + 1);
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
    readRows(S, q, bh * T * D, out, 0, T, D, Dv, table, f, acc);
  }
  return out;
}
