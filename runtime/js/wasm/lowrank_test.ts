/**
 * @file The WebAssembly low-rank kernels (wasm/lowrank.ts, wasm/lowrank_module.ts) against float64
 * references: the state update ΔS = Σ_j φ_k(k_j)[v_j, 1] and the read (φ_q(q)ᵀS)[:Dv]/(φ_q(q)ᵀS)[Dv],
 * over head dims with and without the 4 × 4 transposes, value widths with padding, segments shorter
 * than a vector, longer than a slab and longer than a job, on the calling thread and on the pool.
 *
 * Error model (u = 2⁻²⁴, γ_n = n·u/(1 − n·u), float64 roundings ≤ n·2⁻⁵³ of the same sums):
 * - A feature φ[α] is a chain of |α| ≤ g float32 multiplies of float32 inputs: φ̃ = φ(1 + θ_g).
 * - State: per slab of ≤ SLAB_ROWS keys, each entry is a float32 recursive sum of the products
 *   φ̃·v (one rounding each) in one lane, and the ones column a lane sum of ≤ SLAB_ROWS/4 terms plus
 *   the reduction of 4 accumulators and 4 lanes; the slabs' float32 sums are added in float64. So
 *   |ΔS̃ − ΔS| ≤ (γ_{g + SLAB_ROWS + 1} + n·2⁻⁵³·2)·Σ_j |φ_k(k_j)|·(|v_j|, 1).
 * - Read: S' = fround(coef ∘ S) (one rounding), φ̃_q (g), one rounding per product and float32
 *   sums over blocks of ≤ READ_BLOCK monomials then across the ⌈r/READ_BLOCK⌉ blocks: numerator
 *   and denominator move by ≤ γ_c·T with c = g + 2 + min(r, READ_BLOCK) + ⌈r/READ_BLOCK⌉ and
 *   T = Σ_α |coef_α φ_q[α] S[α, ·]|; then |out̃ − out| ≤ (|Δn| + |out|·|Δd|)/(|d| − |Δd|) plus the
 *   rounding of the division, u·|out̃|.
 */
import assert from "node:assert/strict";
import { rng } from "../../../tests/_rng.ts";
import { expPoly } from "../../../compiler/lowrank/poly.ts";
import { features, type FeatureTable, featureTable, SLAB_ROWS } from "../lowrank.ts";
import { accumulateWasm, lowrankWasmAvailable, readWasm } from "./lowrank.ts";
import { READ_BLOCK } from "./lowrank_module.ts";

const U = 2 ** -24, U64 = 2 ** -53;
const gamma = (n: number) => (n * U) / (1 - n * U);
const ignore = !lowrankWasmAvailable();

type Rng = ReturnType<typeof rng>;

/** Rows of norm ≤ maxNorm (uniform in [0.3, 1]·maxNorm). */
function rows(r: Rng, n: number, d: number, maxNorm: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < d; c++) out[i * d + c] = r.normal(), s += out[i * d + c]! ** 2;
    const f = ((0.3 + 0.7 * r.uniform()) * maxNorm) / Math.sqrt(s);
    for (let c = 0; c < d; c++) out[i * d + c]! *= f;
  }
  return out;
}

/** float64 Σ_j φ_k(k_j)[v_j, 1] over n rows at k[ko..], v[vo..], and Σ_j |φ_k(k_j)|·(|v_j|, 1). */
function stateRef(
  k: Float32Array,
  v: Float32Array,
  ko: number,
  vo: number,
  n: number,
  D: number,
  Dv: number,
  table: FeatureTable,
): { S: Float64Array; abs: Float64Array } {
  const w = Dv + 1, S = new Float64Array(table.r * w), abs = new Float64Array(table.r * w);
  const f = new Float64Array(table.r);
  for (let j = 0; j < n; j++) {
    features(k, ko + j * D, table, f);
    for (let i = 0; i < table.r; i++) {
      for (let c = 0; c < Dv; c++) {
        const x = v[vo + j * Dv + c]!;
        S[i * w + c]! += f[i]! * x, abs[i * w + c]! += Math.abs(f[i]! * x);
      }
      S[i * w + Dv]! += f[i]!, abs[i * w + Dv]! += Math.abs(f[i]!);
    }
  }
  return { S, abs };
}

/** Cases: head dim, value width, degree, segment lengths (several segments per call). */
const CASES = [
  { D: 4, Dv: 4, g: 3, lengths: [1, 3, 4, 17, 130] },
  { D: 5, Dv: 3, g: 2, lengths: [2, 129, 7] },
  { D: 8, Dv: 8, g: 3, lengths: [5, 300, 2500] },
  { D: 8, Dv: 9, g: 2, lengths: [64, 255] },
  { D: 3, Dv: 1, g: 4, lengths: [33, 1] },
  { D: 16, Dv: 16, g: 2, lengths: [200, 6] },
  // r = 969: four read blocks; Dvp = 20: a strip of 4 vectors and one of 1
  { D: 16, Dv: 4, g: 3, lengths: [40, 131] },
  { D: 4, Dv: 20, g: 2, lengths: [50, 9] },
  // enough work for the worker pool
  { D: 8, Dv: 8, g: 3, lengths: [5000, 3100] },
];

Deno.test({
  name: "accumulateWasm: ΔS within the float32 slab bound of the float64 sums",
  ignore,
  fn() {
    const r = rng(11);
    for (const { D, Dv, g, lengths } of CASES) {
      const table = featureTable(D, expPoly("chebyshev", g, 0.7).coeffs, 0.9);
      const total = lengths.reduce((a, b) => a + b, 0), w = Dv + 1;
      // rows at an offset into larger arrays, segments back to back
      const k = rows(r, total + 3, D, 1), v = Float32Array.from({ length: (total + 3) * Dv }, () => 3 * r.normal());
      let at = 3;
      const segs = lengths.map((n) => {
        const s = { k: at * D, v: at * Dv, n, into: new Float64Array(table.r * w) };
        at += n;
        return s;
      });
      // segment 1 also adds into segment 0's state, which starts at 0.25 (outputs are added, not stored)
      segs[0]!.into.fill(0.25);
      assert.ok(accumulateWasm(k, v, D, Dv, table, [...segs, { ...segs[1]!, into: segs[0]!.into }]));
      const gam = gamma(g + SLAB_ROWS + 1) + 2 * total * U64;
      let worst = 0;
      segs.forEach((s, i) => {
        const { S, abs } = stateRef(k, v, s.k, s.v, s.n, D, Dv, table);
        const extra = i === 0 ? stateRef(k, v, segs[1]!.k, segs[1]!.v, segs[1]!.n, D, Dv, table) : null;
        for (let m = 0; m < S.length; m++) {
          const want = S[m]! + (extra ? extra.S[m]! + 0.25 : 0);
          const tol = gam * (abs[m]! + (extra ? extra.abs[m]! + 0.25 : 0));
          const err = Math.abs(s.into[m]! - want);
          assert.ok(err <= tol, `D ${D} Dv ${Dv} g ${g} segment ${i} (n ${s.n}) entry ${m}: ${err} > ${tol}`);
          if (tol > 0) worst = Math.max(worst, err / tol);
        }
      });
      console.log(`accumulate D ${D} Dv ${Dv} r ${table.r} n ${lengths}: worst error/bound ${worst.toExponential(2)}`);
    }
  },
});

Deno.test({
  name: "readWasm: outputs within the float32 read bound of the float64 quotient",
  ignore,
  fn() {
    const r = rng(12);
    for (const { D, Dv, g, lengths } of CASES) {
      const s = 0.9, table = featureTable(D, expPoly("taylor", g, 0.7).coeffs, s);
      const total = lengths.reduce((a, b) => a + b, 0), w = Dv + 1;
      // states from real keys and values, so every denominator is Σ_j P(s⟨q,k_j⟩) > 0
      const states = [0, 1].map(() => {
        const n = 40, k = rows(r, n, D, 0.8), v = Float32Array.from({ length: n * Dv }, () => 3 * r.normal());
        return stateRef(k, v, 0, 0, n, D, Dv, table).S;
      });
      const q = rows(r, total + 2, D, 0.8), out = new Float32Array((total + 2) * Dv).fill(NaN);
      let at = 2;
      const segs = lengths.map((n, i) => {
        const seg = { q: at * D, o: at * Dv, n, S: states[i % 2]! };
        at += n;
        return seg;
      });
      assert.ok(readWasm(q, out, D, Dv, table, segs));
      for (let i = 0; i < 2 * Dv; i++) assert.ok(Number.isNaN(out[i]!), "rows outside the segments are untouched");
      const c = g + 2 + Math.min(table.r, READ_BLOCK) + Math.ceil(table.r / READ_BLOCK);
      const f = new Float64Array(table.r);
      let worst = 0;
      for (const seg of segs) {
        for (let j = 0; j < seg.n; j++) {
          features(q, seg.q + j * D, table, f);
          const num = new Float64Array(w), abs = new Float64Array(w);
          for (let i = 0; i < table.r; i++) {
            for (let cc = 0; cc < w; cc++) {
              const t = table.coef[i]! * f[i]! * seg.S[i * w + cc]!;
              num[cc]! += t, abs[cc]! += Math.abs(t);
            }
          }
          const den = num[Dv]!, dDen = gamma(c) * abs[Dv]! + table.r * U64 * abs[Dv]!;
          for (let cc = 0; cc < Dv; cc++) {
            const want = num[cc]! / den, got = out[seg.o + j * Dv + cc]!;
            const dNum = gamma(c) * abs[cc]! + table.r * U64 * abs[cc]!;
            const quotient = (dNum + Math.abs(want) * dDen) / (Math.abs(den) - dDen);
            const tol = quotient + U * (Math.abs(want) + quotient);
            const err = Math.abs(got - want);
            assert.ok(err <= tol, `D ${D} Dv ${Dv} g ${g} row ${j} of ${seg.n}, column ${cc}: ${err} > ${tol}`);
            worst = Math.max(worst, err / tol);
          }
        }
      }
      console.log(`read D ${D} Dv ${Dv} r ${table.r} n ${lengths}: worst error/bound ${worst.toExponential(2)}`);
    }
  },
});
