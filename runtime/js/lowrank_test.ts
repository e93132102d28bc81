/**
 * @file Tests of the low-rank attention kernels against float64 references written here: exactness
 * of the polynomial feature map, the ε ⇒ 2ε/(1−ε)·‖V‖_∞ output bound on randomized instances (plain,
 * block-causal and windowed masks), convergence in the degree, the run-time β guard, and the
 * generation-state form.
 *
 * Error model used by every tolerance below (u32 = 2^-24, u64 = 2^-53):
 * - P is chosen by smallestDegree, whose analytic bound guarantees |P(x) − e^x| ≤ ε·e^x on all of
 *   [−β, β]; inputs are built so that every logit lies in [−β, β].
 * - With Ã_ij = A_ij(1 + δ_ij), |δ| ≤ ε, each output row is a reweighting of the exact one:
 *   out̃ − out = Σ_j w_j δ_j (v_j − out) / (1 + Σ_j w_j δ_j), so |out̃ − out| ≤ 2ε/(1−ε)·‖V‖_∞.
 * - The kernels read the same float32 inputs as the references, work in float64 and round each output
 *   once to float32 (≤ u32·|out| ≤ u32·(1 + 2ε/(1−ε))·‖V‖_∞). float64 sums of r terms cost at most
 *   ≈ (r + 2g)·u64·Σ|terms|, and Σ_α |coef_α φ_q[α] φ_k[α]| = Σ_t |p_t| (|s| Σ_i |q_i k_i|)^t ≤ P̄(β)
 *   with P̄(x) = Σ_t |p_t| x^t (Cauchy–Schwarz), against A ≥ e^{−β}: ≤ 4000·1.1e-16·e^6 ≈ 2e-10
 *   relative here, negligible beside u32. Hence the float32 slack 4·u32·‖V‖_∞ (2·u32 for the
 *   output rounding, the other half a wide margin for the float64 noise).
 */
import assert from "node:assert/strict";
import { rng } from "../../tests/_rng.ts";
import { expPoly, type Family, smallestDegree } from "../../compiler/lowrank/poly.ts";
import { attention, fullKeyRanges, type KeyRanges, scaleKeyRanges } from "./kernels.ts";
import {
  features,
  type FeatureTable,
  featureTable,
  gemmRoundings,
  GuardError,
  guardStats,
  lowrankAttention,
  lowrankRead,
  lowrankState,
  setLowrankPath,
} from "./lowrank.ts";

const U32 = 2 ** -24;
const U64 = 2 ** -53;
/** Relative margin kept below β when building inputs, covering the float32 rounding of q and k. */
const MARGIN = 1e-6;

type Rng = ReturnType<typeof rng>;

/** C(n, k) by the multiplicative formula on integers small enough to be exact. */
function choose(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return Math.round(r);
}

/** P̄(x) = Σ_t |p_t| x^t. */
function absPoly(p: readonly number[], x: number): number {
  return p.reduce((a, c, t) => a + Math.abs(c) * x ** t, 0);
}

/** `rows` random directions in d dims, row norms uniform in [0.2, 1]·maxNorm, row 0 exactly maxNorm. */
function randomRows(r: Rng, rows: number, d: number, maxNorm: number): Float64Array {
  const out = new Float64Array(rows * d);
  for (let i = 0; i < rows; i++) {
    let n2 = 0;
    for (let c = 0; c < d; c++) out[i * d + c] = r.normal(), n2 += out[i * d + c]! ** 2;
    const norm = (i === 0 ? 1 : 0.2 + 0.8 * r.uniform()) * maxNorm / Math.sqrt(n2);
    for (let c = 0; c < d; c++) out[i * d + c]! *= norm;
  }
  return out;
}

/** A random [rows, d] block whose logits against itself stay inside ±β (see buildQKV). */
interface Instance {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  vmax: number;
}

/**
 * q [BH, Tq, D], k [BH, Tk, D], v [BH, Tk, Dv] with |s|·max‖q‖·max‖k‖ = β(1 − MARGIN) per head
 * (max‖q‖ = qNorm when given, else a random split between q and k), key 0 parallel and key 1
 * antiparallel to query 0 at full norm so the logits reach both ends of [−β, β].
 */
function buildQKV(
  r: Rng,
  BH: number,
  Tq: number,
  Tk: number,
  D: number,
  Dv: number,
  scale: number,
  beta: number,
  qNorm?: number,
): Instance {
  const q = new Float32Array(BH * Tq * D), k = new Float32Array(BH * Tk * D), v = new Float32Array(BH * Tk * Dv);
  const target = (beta * (1 - MARGIN)) / Math.abs(scale);
  for (let bh = 0; bh < BH; bh++) {
    const qn = qNorm ?? Math.sqrt(target) * Math.exp(r.uniform() - 0.5);
    const kn = target / qn;
    const qh = randomRows(r, Tq, D, qn), kh = randomRows(r, Tk, D, kn);
    for (let c = 0; c < D; c++) {
      kh[c] = (qh[c]! * kn) / qn;
      if (Tk > 1) kh[D + c] = (-qh[c]! * kn) / qn;
    }
    q.set(qh, bh * Tq * D), k.set(kh, bh * Tk * D);
  }
  let vmax = 0;
  for (let i = 0; i < v.length; i++) v[i] = 2 * r.normal(), vmax = Math.max(vmax, Math.abs(v[i]!));
  return { q, k, v, vmax };
}

/** |s|·max‖q‖·max‖k‖ of one head, measured on the float32 values. */
function headBeta(q: Float32Array, k: Float32Array, bh: number, Tq: number, Tk: number, D: number, s: number): number {
  const maxNorm = (x: Float32Array, base: number, rows: number) => {
    let m = 0;
    for (let i = 0; i < rows; i++) {
      let n2 = 0;
      for (let c = 0; c < D; c++) n2 += x[base + i * D + c]! ** 2;
      m = Math.max(m, n2);
    }
    return Math.sqrt(m);
  };
  return Math.abs(s) * maxNorm(q, bh * Tq * D, Tq) * maxNorm(k, bh * Tk * D, Tk);
}

/** Scale index of each token of a schedule (side lengths n_s, n_s² tokens each). */
function levels(schedule: readonly number[]): number[] {
  return schedule.flatMap((n, s) => new Array<number>(n * n).fill(s));
}

/**
 * Float64 softmax attention written independently of the kernels: query i sees key j when `visible`
 * says so (all keys when it is null).
 */
function exactAttention(
  inst: { q: Float32Array; k: Float32Array; v: Float32Array },
  BH: number,
  Tq: number,
  Tk: number,
  D: number,
  Dv: number,
  s: number,
  visible: ((i: number, j: number) => boolean) | null,
): Float64Array {
  const { q, k, v } = inst;
  const out = new Float64Array(BH * Tq * Dv);
  const logits = new Float64Array(Tk);
  for (let bh = 0; bh < BH; bh++) {
    for (let i = 0; i < Tq; i++) {
      let max = -Infinity;
      for (let j = 0; j < Tk; j++) {
        if (visible && !visible(i, j)) {
          logits[j] = -Infinity;
          continue;
        }
        let dot = 0;
        for (let c = 0; c < D; c++) dot += q[(bh * Tq + i) * D + c]! * k[(bh * Tk + j) * D + c]!;
        logits[j] = s * dot;
        max = Math.max(max, logits[j]!);
      }
      let sum = 0;
      const o = (bh * Tq + i) * Dv;
      for (let j = 0; j < Tk; j++) {
        if (logits[j] === -Infinity) continue;
        const w = Math.exp(logits[j]! - max);
        sum += w;
        for (let c = 0; c < Dv; c++) out[o + c]! += w * v[(bh * Tk + j) * Dv + c]!;
      }
      for (let c = 0; c < Dv; c++) out[o + c]! /= sum;
    }
  }
  return out;
}

/** Block-causal visibility over scales, with a window of `window` scales (Infinity: all earlier). */
function scaleMask(schedule: readonly number[], window: number): (i: number, j: number) => boolean {
  const lv = levels(schedule);
  return (i, j) => lv[j]! <= lv[i]! && lv[j]! > lv[i]! - window;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, from = 0, to = a.length): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = from; i < to; i++) {
    const e = Math.abs(a[i]! - b[i]!);
    if (!(e <= m)) m = e; // NaN propagates as a failure
  }
  return m;
}

/** Reconstructs the exponent vector of every monomial of a table from its parent chain. */
function exponents(table: FeatureTable): number[][] {
  const alpha: number[][] = [new Array<number>(table.d).fill(0)];
  for (let i = 1; i < table.r; i++) {
    const a = alpha[table.parent[i]!]!.slice();
    a[table.variable[i]!]!++;
    alpha.push(a);
  }
  return alpha;
}

// ---------------------------------------------------------------------------------------------
// Feature map

Deno.test("featureTable/features: φ_q·φ_k reproduces P(s⟨q,k⟩) exactly, r = C(d+g, g)", () => {
  const r = rng(20240611);
  for (let n = 0; n < 200; n++) {
    const d = 2 + Math.floor(r.uniform() * 9), g = Math.floor(r.uniform() * 6);
    const coeffs = Array.from({ length: g + 1 }, () => r.normal());
    const s = (r.uniform() < 0.5 ? -1 : 1) * (0.1 + r.uniform());
    const table = featureTable(d, coeffs, s);
    assert.equal(table.r, choose(d + g, g), `d=${d} g=${g}`);
    assert.equal(table.d, d);
    // Structure: distinct exponent vectors of degree ≤ g, coef = p_|α|·|α|!/α!·s^|α|.
    const alpha = exponents(table);
    assert.equal(new Set(alpha.map((a) => a.join(","))).size, table.r, "monomials are distinct");
    const fact = (m: number): number => (m <= 1 ? 1 : m * fact(m - 1));
    alpha.forEach((a, i) => {
      const deg = a.reduce((x, y) => x + y, 0);
      assert.ok(deg <= g);
      const want = coeffs[deg]! * fact(deg) / a.reduce((x, y) => x * fact(y), 1) * s ** deg;
      assert.ok(Math.abs(table.coef[i]! - want) <= 1e-14 * Math.abs(want), `coef ${i}`);
    });
    // The identity Σ_α coef_α q^α k^α = Σ_t p_t (s⟨q,k⟩)^t, with an offset into a larger buffer.
    const off = 3;
    const qk = Float64Array.from({ length: 2 * d + off }, () => r.normal());
    const fq = new Float64Array(table.r), fk = new Float64Array(table.r);
    features(qk, off, table, fq);
    features(qk, off + d, table, fk);
    let dot = 0, absDot = 0;
    for (let c = 0; c < d; c++) {
      dot += qk[off + c]! * qk[off + d + c]!;
      absDot += Math.abs(qk[off + c]! * qk[off + d + c]!);
    }
    let lhs = 0;
    for (let i = 0; i < table.r; i++) lhs += table.coef[i]! * fq[i]! * fk[i]!;
    const rhs = coeffs.reduce((a, c, t) => a + c * (s * dot) ** t, 0);
    // Both sides round ≤ (r + 2g + 2)·u64 ≤ 3e-13 of Σ|terms| = Σ_t |p_t| (|s| Σ|q_i k_i|)^t (the
    // absolute floor: P may cancel to ~0); 1e-12 of that sum is a float64-precision check.
    const floor = absPoly(coeffs, Math.abs(s) * absDot);
    assert.ok(Math.abs(lhs - rhs) <= 1e-12 * floor, `d=${d} g=${g}: ${lhs} vs ${rhs}`);
  }
});

// ---------------------------------------------------------------------------------------------
// The ε bound on randomized instances

Deno.test("lowrankAttention: entrywise ≤ ε and outputs within 2ε/(1−ε)·‖V‖_∞ (plain, block-causal, window)", () => {
  const r = rng(7);
  const FAMS: readonly Family[] = ["taylor", "chebyshev"];
  const EPS = [1e-2, 1e-3, 1e-4];
  const BH = 2, Dv = 3;
  let cases = 0, windowed = 0, drawn = 0, calls = 0;
  const worst = { entry: 0, plain: 0, causal: 0, window2: 0, window1: 0 };
  const before = { ...guardStats };
  while (cases < 500) {
    drawn++;
    const D = 2 + Math.floor(r.uniform() * 15);
    const beta = 0.05 + r.uniform() * 2.95;
    const family = FAMS[Math.floor(r.uniform() * 2)]!, eps = EPS[Math.floor(r.uniform() * 3)]!;
    const p = smallestDegree(family, beta, eps);
    assert.ok(p, `${family} β=${beta} ε=${eps}: no degree`);
    if (choose(D + p.degree, p.degree) > 4000) continue; // redraw: keeps the run fast
    cases++;
    const s = (r.uniform() < 0.2 ? -1 : 1) / Math.sqrt(D) * (0.5 + r.uniform());
    const table = featureTable(D, p.coeffs, s);
    const what = `case ${cases}: ${family} D=${D} g=${p.degree} β=${beta.toFixed(3)} ε=${eps} s=${s.toFixed(3)}`;
    const outBound = (vmax: number) => (2 * eps) / (1 - eps) * vmax;
    const slack32 = (vmax: number) => 4 * U32 * vmax;

    // (a) + (b): plain form, Tq ≠ Tk allowed.
    const Tq = 1 + Math.floor(r.uniform() * 10), Tk = 2 + Math.floor(r.uniform() * 14);
    const plain = buildQKV(r, BH, Tq, Tk, D, Dv, s, beta);
    for (let bh = 0; bh < BH; bh++) assert.ok(headBeta(plain.q, plain.k, bh, Tq, Tk, D, s) <= beta, what);
    // (a) entrywise relative error of Ã = φ_q·φ_k against A = e^{s⟨q,k⟩}, float64 throughout; the
    // slack is the float64 rounding of the r-term sum (file comment) plus 1e-12 for the rounding of
    // the Chebyshev coefficients themselves.
    const entrySlack = (table.r + 2 * p.degree + 2) * U64 * absPoly(p.coeffs, beta) * Math.exp(beta) + 1e-12;
    const fq = new Float64Array(table.r), fk = new Float64Array(table.r);
    for (let bh = 0; bh < BH; bh++) {
      for (let i = 0; i < Tq; i++) {
        features(plain.q, (bh * Tq + i) * D, table, fq);
        for (let j = 0; j < Tk; j++) {
          features(plain.k, (bh * Tk + j) * D, table, fk);
          let approx = 0, dot = 0;
          for (let m = 0; m < table.r; m++) approx += table.coef[m]! * fq[m]! * fk[m]!;
          for (let c = 0; c < D; c++) dot += plain.q[(bh * Tq + i) * D + c]! * plain.k[(bh * Tk + j) * D + c]!;
          const exact = Math.exp(s * dot);
          const rel = Math.abs(approx - exact) / exact;
          assert.ok(rel <= eps + entrySlack, `${what}: entry (${i},${j}) rel ${rel}`);
          worst.entry = Math.max(worst.entry, rel / eps);
        }
      }
    }
    // (b) plain output against float64 softmax.
    const outPlain = lowrankAttention({
      q: plain.q,
      k: plain.k,
      v: plain.v,
      BH,
      Tq,
      Tk,
      D,
      Dv,
      scale: s,
      sizes: null,
      window: Infinity,
      table,
      beta,
      exactRanges: fullKeyRanges(Tq, Tk),
    });
    const errPlain = maxAbsDiff(outPlain, exactAttention(plain, BH, Tq, Tk, D, Dv, s, null));
    assert.ok(errPlain <= outBound(plain.vmax) + slack32(plain.vmax), `${what}: plain error ${errPlain}`);
    worst.plain = Math.max(worst.plain, errPlain / outBound(plain.vmax));

    // (c) block-causal prefix form over a random small schedule (1, then steps of +1 or +2).
    const schedule = [1];
    const nScales = 2 + Math.floor(r.uniform() * 3);
    while (schedule.length < nScales) schedule.push(schedule.at(-1)! + 1 + Math.floor(r.uniform() * 2));
    const sizes = schedule.map((n) => n * n), L = sizes.reduce((a, b) => a + b, 0);
    const bc = buildQKV(r, BH, L, L, D, Dv, s, beta);
    for (let bh = 0; bh < BH; bh++) assert.ok(headBeta(bc.q, bc.k, bh, L, L, D, s) <= beta, what);
    for (const window of schedule.length >= 3 ? [Infinity, 2, 1] : [Infinity, 1]) {
      calls++;
      const out = lowrankAttention({
        q: bc.q,
        k: bc.k,
        v: bc.v,
        BH,
        Tq: L,
        Tk: L,
        D,
        Dv,
        scale: s,
        sizes,
        window,
        table,
        beta,
        exactRanges: scaleKeyRanges(schedule, window),
      });
      const err = maxAbsDiff(out, exactAttention(bc, BH, L, L, D, Dv, s, scaleMask(schedule, window)));
      assert.ok(err <= outBound(bc.vmax) + slack32(bc.vmax), `${what}: schedule ${schedule} window ${window}: ${err}`);
      const ratio = err / outBound(bc.vmax);
      if (window === Infinity) worst.causal = Math.max(worst.causal, ratio);
      else if (window === 2) worst.window2 = Math.max(worst.window2, ratio), windowed++;
      else worst.window1 = Math.max(worst.window1, ratio);
    }
  }
  // Every head was inside β: the guard checked each and never fell back.
  assert.equal(guardStats.fallbacks, before.fallbacks);
  assert.equal(guardStats.checks - before.checks, BH * (cases + calls));
  console.log(
    `bound: ${cases} cases (${drawn} drawn, ${windowed} windowed); worst error/bound: entry ${
      worst.entry.toExponential(3)
    }, plain ${worst.plain.toExponential(3)}, causal ${worst.causal.toExponential(3)}, window 2 ${
      worst.window2.toExponential(3)
    }, window 1 ${worst.window1.toExponential(3)}`,
  );
});

// ---------------------------------------------------------------------------------------------
// Convergence in the degree

Deno.test("lowrankAttention: block-causal error falls with the degree to float32 level", () => {
  const schedule = [1, 2, 3, 4], sizes = schedule.map((n) => n * n), L = 30;
  const D = 8, Dv = 4, beta = 1, s = 1 / Math.sqrt(D);
  const inst = buildQKV(rng(99), 1, L, L, D, Dv, s, beta);
  const ref = exactAttention(inst, 1, L, L, D, Dv, s, scaleMask(schedule, Infinity));
  const ranges = scaleKeyRanges(schedule, Infinity);
  const before = guardStats.fallbacks;
  for (const family of ["taylor", "chebyshev"] as const) {
    const errs: number[] = [];
    for (let g = 1; g <= 8; g++) {
      const table = featureTable(D, expPoly(family, g, beta).coeffs, s);
      const out = lowrankAttention({
        q: inst.q,
        k: inst.k,
        v: inst.v,
        BH: 1,
        Tq: L,
        Tk: L,
        D,
        Dv,
        scale: s,
        sizes,
        window: Infinity,
        table,
        beta,
        exactRanges: ranges,
      });
      errs.push(maxAbsDiff(out, ref) / inst.vmax);
    }
    // Strictly decreasing until both neighbours sit at the float32 floor (a few u32 ≈ 1e-7·‖V‖).
    for (let g = 1; g < errs.length; g++) {
      if (errs[g - 1]! > 1e-6) assert.ok(errs[g]! < errs[g - 1]!, `${family}: g=${g + 1} ${errs}`);
    }
    // At g = 8 and β = 1 the relative error of P is ≤ e²/9! ≈ 2e-5 (Taylor) or 2(1/2)^9 e²/9! ≈ 8e-8
    // (Chebyshev) in the worst case and far less on average over the keys: float32 level.
    assert.ok(errs.at(-1)! <= 1e-5, `${family}: final ${errs}`);
    assert.ok(errs[0]! > 10 * errs.at(-1)!, `${family}: no real decrease ${errs}`);
    console.log(`convergence ${family}: ${errs.map((e) => e.toExponential(2)).join(" ")}`);
  }
  assert.equal(guardStats.fallbacks, before);
});

// ---------------------------------------------------------------------------------------------
// Run-time guard

Deno.test("lowrankAttention guard: offending heads fall back to the exact kernel, others never do", () => {
  const D = 6, Dv = 3, BH = 4, beta = 1.5, s = 1 / Math.sqrt(D);
  const p = smallestDegree("chebyshev", beta, 1e-3)!;
  const table = featureTable(D, p.coeffs, s);
  const schedule = [1, 2, 3], sizes = schedule.map((n) => n * n), L = 14;
  for (const masked of [false, true]) {
    const Tq = masked ? L : 5, Tk = masked ? L : 9;
    const ranges: KeyRanges = masked ? scaleKeyRanges(schedule, Infinity) : fullKeyRanges(Tq, Tk);
    const inst = buildQKV(rng(masked ? 5 : 6), BH, Tq, Tk, D, Dv, s, beta);
    const run = () =>
      lowrankAttention({
        q: inst.q,
        k: inst.k,
        v: inst.v,
        BH,
        Tq,
        Tk,
        D,
        Dv,
        scale: s,
        sizes: masked ? sizes : null,
        window: Infinity,
        table,
        beta,
        exactRanges: ranges,
      });

    // Within: checks grows by BH, no fallback, outputs within the ε bound (not equal to the exact).
    let before = { ...guardStats };
    const within = run();
    assert.equal(guardStats.checks - before.checks, BH);
    assert.equal(guardStats.fallbacks, before.fallbacks);
    const ref = exactAttention(inst, BH, Tq, Tk, D, Dv, s, masked ? scaleMask(schedule, Infinity) : null);
    assert.ok(maxAbsDiff(within, ref) <= (2e-3 / (1 - 1e-3) + 4 * U32) * inst.vmax);

    // Head 1: queries ×1.5; head 3: one key ×1.2 (β exceeded by 50% and 20%). Heads 0 and 2 stay.
    for (let i = 0; i < Tq * D; i++) inst.q[Tq * D + i]! *= 1.5;
    // The last key of head 3 becomes key 0 (the head's max norm) ×1.2: the guard must scan every row.
    for (let c = 0; c < D; c++) inst.k[(4 * Tk - 1) * D + c] = inst.k[3 * Tk * D + c]! * 1.2;
    for (const bh of [0, 2]) assert.ok(headBeta(inst.q, inst.k, bh, Tq, Tk, D, s) <= beta);
    for (const bh of [1, 3]) assert.ok(headBeta(inst.q, inst.k, bh, Tq, Tk, D, s) > 1.19 * beta);
    before = { ...guardStats };
    const out = run();
    assert.equal(guardStats.checks - before.checks, BH);
    assert.equal(guardStats.fallbacks - before.fallbacks, 2, "one fallback per offending head");
    const exact = attention({ q: inst.q, k: inst.k, v: inst.v, BH, Tq, Tk, D, Dv, scale: s, ranges });
    const head = Tq * Dv;
    for (const bh of [1, 3]) {
      // The fallback is the exact kernel itself on that head: identical arithmetic, identical bits.
      assert.deepEqual(out.subarray(bh * head, (bh + 1) * head), exact.subarray(bh * head, (bh + 1) * head));
    }
    for (const bh of [0, 2]) {
      // Untouched heads are still the low-rank result, bit for bit as in the first run.
      assert.deepEqual(out.subarray(bh * head, (bh + 1) * head), within.subarray(bh * head, (bh + 1) * head));
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Generation state

Deno.test("lowrankState + lowrankRead scale by scale equal block-causal lowrankAttention", () => {
  const schedule = [1, 2, 3, 5], sizes = schedule.map((n) => n * n), L = sizes.reduce((a, b) => a + b, 0);
  const D = 5, Dv = 3, BH = 2, beta = 1, eps = 1e-3, s = -0.7 / Math.sqrt(D);
  const p = smallestDegree("taylor", beta, eps)!;
  const table = featureTable(D, p.coeffs, s);
  // Every head: max‖q‖ = qNorm, max‖k‖ = keyNorm(1 − MARGIN), |s|·qNorm·keyNorm = β: the compiled bounds.
  const qNorm = 1.3, keyNorm = beta / (Math.abs(s) * qNorm);
  const inst = buildQKV(rng(31), BH, L, L, D, Dv, s, beta, qNorm);
  const full = lowrankAttention({
    q: inst.q,
    k: inst.k,
    v: inst.v,
    BH,
    Tq: L,
    Tk: L,
    D,
    Dv,
    scale: s,
    sizes,
    window: Infinity,
    table,
    beta,
    exactRanges: scaleKeyRanges(schedule, Infinity),
  });
  const stepwise = new Float32Array(BH * L * Dv);
  let state: Float32Array | null = null, start = 0;
  for (const n of sizes) {
    const slice = (x: Float32Array, w: number) => {
      const o = new Float32Array(BH * n * w);
      for (let bh = 0; bh < BH; bh++) o.set(x.subarray((bh * L + start) * w, (bh * L + start + n) * w), bh * n * w);
      return o;
    };
    const prevCopy: Float32Array | null = state ? state.slice() : null;
    const next: Float32Array = lowrankState({
      k: slice(inst.k, D),
      v: slice(inst.v, Dv),
      prev: state,
      BH,
      T: n,
      D,
      Dv,
      table,
      keyNorm,
      what: "t",
    });
    if (state) assert.deepEqual(state, prevCopy, "the previous state is not modified");
    assert.equal(next.length, BH * table.r * (Dv + 1));
    state = next;
    const out = lowrankRead({ q: slice(inst.q, D), state, BH, T: n, D, Dv, scale: s, table, beta, keyNorm, what: "t" });
    for (let bh = 0; bh < BH; bh++) {
      stepwise.set(out.subarray(bh * n * Dv, (bh + 1) * n * Dv), (bh * L + start) * Dv);
    }
    start += n;
  }
  // The state is stored in float32: after S scales each entry carries ≤ ((1+u32)^S − 1) ≤ S·u32·(1+u32)^S
  // of Σ_j |φ_k(k_j)|·(|v_j|, 1), so numerator and denominator of a row move by ≤ η·‖V‖_∞·ΣP̄ and η·ΣP̄
  // (η = that factor, P̄ as in the file comment at β), against a denominator ≥ ΣP·… ≥ (#keys)(1−ε)e^{−β}:
  // |Δout| ≤ 2η·P̄(β)e^β/(1−ε)/(1 − η·P̄(β)e^β/(1−ε))·‖V‖_∞, plus 2·u32·‖V‖_∞ for rounding both outputs.
  const eta = sizes.length * U32 * (1 + U32) ** sizes.length;
  const amp = (absPoly(p.coeffs, beta) * Math.exp(beta)) / (1 - eps);
  const tol = ((2 * eta * amp) / (1 - eta * amp) + 2 * U32) * inst.vmax * 1.01;
  const err = maxAbsDiff(stepwise, full);
  assert.ok(err <= tol, `state vs full: ${err} > ${tol}`);
  console.log(`state: max |stepwise − full| = ${err.toExponential(3)} (tolerance ${tol.toExponential(3)})`);
});

Deno.test("lowrankState / lowrankRead: GuardError naming the violated bound", () => {
  const D = 4, Dv = 2, BH = 2, T = 3, s = 0.5, keyNorm = 1.25, beta = 2;
  const p = smallestDegree("chebyshev", beta, 1e-2)!;
  const table = featureTable(D, p.coeffs, s);
  const r = rng(3);
  // Keys at exactly keyNorm (row 0) are accepted.
  const k = new Float32Array(BH * T * D);
  for (let bh = 0; bh < BH; bh++) k.set(randomRows(r, T, D, keyNorm), bh * T * D);
  const v = Float32Array.from({ length: BH * T * Dv }, () => r.normal());
  const state = lowrankState({ k, v, prev: null, BH, T, D, Dv, table, keyNorm, what: "block 3" });
  // One key of head 1 at 1.1·keyNorm: rejected, the message names the bound and the site.
  const bad = k.slice();
  // The last key of head 1 becomes 1.1× its key 0 (norm keyNorm): every row must be checked.
  for (let c = 0; c < D; c++) bad[(2 * T - 1) * D + c] = bad[T * D + c]! * 1.1;
  assert.throws(
    () => lowrankState({ k: bad, v, prev: state, BH, T, D, Dv, table, keyNorm, what: "block 3" }),
    (e: unknown) =>
      e instanceof GuardError && e.name === "GuardError" && e.message.includes(keyNorm.toPrecision(4)) &&
      e.message.includes((1.1 * keyNorm).toPrecision(4)) && e.message.startsWith("block 3"),
  );
  // Queries with |s|·‖q‖·keyNorm = β are read; at 1.05·β the read throws, naming β.
  const qAt = (factor: number) => {
    const q = new Float32Array(BH * T * D);
    for (let bh = 0; bh < BH; bh++) {
      // Largest query last (reversing the flat rows keeps their norms): the guard must check every row.
      const rows = randomRows(r, T, D, (factor * beta) / (s * keyNorm)).reverse();
      q.set(rows, bh * T * D);
    }
    return q;
  };
  const before = guardStats.checks;
  const out = lowrankRead({ q: qAt(1), state, BH, T, D, Dv, scale: s, table, beta, keyNorm, what: "block 3" });
  assert.equal(out.length, BH * T * Dv);
  assert.ok(out.every(Number.isFinite));
  assert.equal(guardStats.checks - before, BH);
  assert.throws(
    () => lowrankRead({ q: qAt(1.05), state, BH, T, D, Dv, scale: s, table, beta, keyNorm, what: "block 3" }),
    (e: unknown) =>
      e instanceof GuardError && e.message.includes(beta.toPrecision(4)) &&
      e.message.includes((1.05 * beta).toPrecision(4)) && e.message.startsWith("block 3"),
  );
});

// ---------------------------------------------------------------------------------------------
// GEMM form

Deno.test("lowrank GEMM form agrees with the row form and keeps the 2ε/(1−ε)·‖V‖_∞ bound", () => {
  // Error model of the GEMM (WebAssembly) form (file comment of lowrank.ts): float32 features (g
  // roundings each side), float32 slab sums of ≤ SLAB_ROWS products added into the float64 S, S' =
  // coef ∘ S rounded once, and the read's float32 products summed in blocks of READ_BLOCK: at most
  // c = gemmRoundings(r, g) roundings per term, each moving the numerator and denominator of a row by
  // ≤ c·u32·Σ_α|coef φ_q φ_k|·(‖V‖_∞, 1), against a denominator ≥ (1−ε)e^{−β} per key:
  // |Δout| ≤ 2c·u32·P̄(β)e^β/(1−ε)·‖V‖_∞ (+ one output rounding).
  const schedule = [1, 2, 4, 8, 16, 24], sizes = schedule.map((n) => n * n), L = sizes.reduce((a, b) => a + b, 0);
  const cases = [
    { D: 8, Dv: 8, BH: 2, beta: 0.5, eps: 1e-3, family: "chebyshev" as const, s: 1 / Math.sqrt(8) },
    { D: 4, Dv: 3, BH: 1, beta: 1.5, eps: 1e-3, family: "taylor" as const, s: -0.9 / 2 },
  ];
  try {
    for (const [ci, { D, Dv, BH, beta, eps, family, s }] of cases.entries()) {
      const p = smallestDegree(family, beta, eps)!;
      const table = featureTable(D, p.coeffs, s);
      const inst = buildQKV(rng(500 + ci), BH, L, L, D, Dv, s, beta);
      const c = gemmRoundings(table.r, p.degree);
      const tol = (2 * c * U32 * absPoly(p.coeffs, beta) * Math.exp(beta) / (1 - eps) + U32) * inst.vmax;
      const outBound = (2 * eps) / (1 - eps) * inst.vmax + 4 * U32 * inst.vmax;
      const before = { ...guardStats };
      for (const window of [Infinity, 2]) {
        const ranges = scaleKeyRanges(schedule, window);
        const run = (path: "rows" | "gemm") => {
          setLowrankPath(path);
          return lowrankAttention({
            q: inst.q,
            k: inst.k,
            v: inst.v,
            BH,
            Tq: L,
            Tk: L,
            D,
            Dv,
            scale: s,
            sizes,
            window,
            table,
            beta,
            exactRanges: ranges,
          });
        };
        const rows = run("rows"), gemm = run("gemm");
        const diff = maxAbsDiff(gemm, rows);
        assert.ok(diff <= tol, `case ${ci} window ${window}: |gemm − rows| ${diff} > ${tol}`);
        const err = maxAbsDiff(gemm, exactAttention(inst, BH, L, L, D, Dv, s, scaleMask(schedule, window)));
        assert.ok(err <= outBound, `case ${ci} window ${window}: gemm error ${err} > ${outBound}`);
        console.log(
          `gemm case ${ci} window ${window}: r ${table.r}, |gemm − rows| ${diff.toExponential(2)} (tol ${
            tol.toExponential(2)
          }), error ${err.toExponential(2)} (bound ${outBound.toExponential(2)})`,
        );
      }
      // Plain form (every query sees every key, Tq ≠ Tk).
      const Tq = 300;
      const ranges = fullKeyRanges(Tq, L);
      const q = inst.q.subarray(0, BH * Tq * D).slice();
      for (let bh = 0; bh < BH; bh++) q.set(inst.q.subarray(bh * L * D, bh * L * D + Tq * D), bh * Tq * D);
      setLowrankPath("rows");
      const rows = lowrankAttention({
        q,
        k: inst.k,
        v: inst.v,
        BH,
        Tq,
        Tk: L,
        D,
        Dv,
        scale: s,
        sizes: null,
        window: Infinity,
        table,
        beta,
        exactRanges: ranges,
      });
      setLowrankPath("gemm");
      const gemm = lowrankAttention({
        q,
        k: inst.k,
        v: inst.v,
        BH,
        Tq,
        Tk: L,
        D,
        Dv,
        scale: s,
        sizes: null,
        window: Infinity,
        table,
        beta,
        exactRanges: ranges,
      });
      assert.ok(maxAbsDiff(gemm, rows) <= tol, `case ${ci} plain: ${maxAbsDiff(gemm, rows)} > ${tol}`);
      // State form: one state over all keys, then a read, in both forms (guards off: only the math is compared).
      const states = (["rows", "gemm"] as const).map((path) => {
        setLowrankPath(path);
        const st = lowrankState({
          k: inst.k,
          v: inst.v,
          prev: null,
          BH,
          T: L,
          D,
          Dv,
          table,
          keyNorm: Infinity,
          what: "t",
        });
        return lowrankRead({ q, state: st, BH, T: Tq, D, Dv, scale: s, table, beta: Infinity, keyNorm: 1, what: "t" });
      });
      assert.ok(maxAbsDiff(states[1]!, states[0]!) <= tol, `case ${ci} state: ${maxAbsDiff(states[1]!, states[0]!)}`);
      assert.equal(guardStats.fallbacks, before.fallbacks);
    }
  } finally {
    setLowrankPath("auto");
  }
});
