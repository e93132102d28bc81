/**
 * @file Tests of the polynomial approximations of exp used by low-rank attention: the chosen degree
 * meets ε (analytic bound and measured error), is minimal, survives an independent re-measurement on
 * a finer grid, and the rank formulas match independent counts and the published table values.
 *
 * Tolerances: errors are measured in float64. Evaluating Σ p_t x^t by Horner costs at most
 * 2g·2^-53·Σ|p_t||x|^t of absolute error; with β ≤ 8 and the degrees chosen here that is ≤ 1e-13
 * relative to e^x for the well-conditioned cases, so re-measurements allow a 1e-12 absolute slack
 * on top of ε (a real excess of ε would be many orders of magnitude larger).
 */
import assert from "node:assert/strict";
import {
  analyticBound,
  binomial,
  evalPoly,
  expPoly,
  type Family,
  MAX_DEGREE,
  measureRelError,
  paperRankBound,
  rank,
  smallestDegree,
} from "./poly.ts";

const FAMILIES: readonly Family[] = ["taylor", "chebyshev"];
const BETAS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8];
const EPSILONS = [1e-2, 1e-3, 1e-6];
/** Slack for float64 evaluation noise on top of ε (see the file comment). */
const SLACK = 1e-12;

/** Horner evaluation written independently of the module's evalPoly. */
function horner(p: readonly number[], x: number): number {
  let acc = 0;
  for (let t = p.length - 1; t >= 0; t--) acc = acc * x + p[t]!;
  return acc;
}

/** max |P − e^x|/e^x and min P over `points` evenly spaced points of [−β, β] (endpoints included). */
function fineMeasure(p: readonly number[], beta: number, points = 20001): { max: number; min: number } {
  let max = 0, min = Infinity;
  for (let i = 0; i < points; i++) {
    const x = i === points - 1 ? beta : -beta + (2 * beta * i) / (points - 1);
    const v = horner(p, x);
    min = Math.min(min, v);
    max = Math.max(max, Math.abs(v - Math.exp(x)) / Math.exp(x));
  }
  return { max, min };
}

/** Whether degree g of `family` fails the selection criteria for ε (what minimality requires). */
function degreeFails(family: Family, g: number, beta: number, eps: number): boolean {
  if (analyticBound(family, g, beta) > eps) return true;
  const p = expPoly(family, g, beta);
  return !(p.measuredRelError <= eps) || !p.positive;
}

Deno.test("smallestDegree: meets ε analytically and on the grid, P > 0, and every lower degree fails", () => {
  let defined = 0, undefinedCount = 0;
  for (const family of FAMILIES) {
    for (const beta of BETAS) {
      for (const eps of EPSILONS) {
        const what = `${family} β=${beta} ε=${eps}`;
        const p = smallestDegree(family, beta, eps);
        if (!p) {
          // No degree up to MAX_DEGREE works: check that claim degree by degree.
          for (let g = 0; g <= MAX_DEGREE; g++) assert.ok(degreeFails(family, g, beta, eps), `${what}: g=${g} works`);
          undefinedCount++;
          continue;
        }
        defined++;
        assert.equal(p.family, family);
        assert.equal(p.beta, beta);
        assert.equal(p.coeffs.length, p.degree + 1, `${what}: coeffs length`);
        assert.ok(p.degree <= MAX_DEGREE);
        assert.ok(p.boundRelError <= eps, `${what}: analytic bound ${p.boundRelError}`);
        assert.equal(p.boundRelError, analyticBound(family, p.degree, beta));
        assert.ok(p.measuredRelError <= eps, `${what}: measured ${p.measuredRelError}`);
        assert.ok(p.positive, `${what}: P not positive`);
        // Minimality: every degree below the chosen one fails the analytic or the measured test.
        for (let g = 0; g < p.degree; g++) assert.ok(degreeFails(family, g, beta, eps), `${what}: g=${g} also works`);
        // Independent re-measurement on a 5x finer grid.
        const fine = fineMeasure(p.coeffs, beta);
        assert.ok(fine.max <= eps + SLACK, `${what}: fine-grid error ${fine.max}`);
        assert.ok(fine.min > 0, `${what}: P reaches ${fine.min}`);
      }
    }
  }
  // The only hopeless combination of this grid: Taylor at β = 8 needs degree 41 for ε = 1e-6
  // (8^42 e^16 / 42! ≈ 5e-7, while degree 40 gives ≈ 2e-5).
  assert.equal(undefinedCount, 1);
  assert.equal(defined, FAMILIES.length * BETAS.length * EPSILONS.length - 1);
  assert.equal(smallestDegree("taylor", 8, 1e-6), undefined);
});

Deno.test("analyticBound: bounds the finely measured error of every degree (the bound is a bound)", () => {
  for (const family of FAMILIES) {
    for (const beta of [0.05, 0.5, 1, 2, 4, 8]) {
      for (let g = 0; g <= 24; g++) {
        const bound = analyticBound(family, g, beta);
        if (bound < 1e-9) break; // below this the float64 evaluation noise is no longer negligible
        const fine = fineMeasure(expPoly(family, g, beta).coeffs, beta, 4001);
        assert.ok(fine.max <= bound + SLACK, `${family} β=${beta} g=${g}: ${fine.max} > bound ${bound}`);
      }
    }
  }
});

Deno.test("analyticBound: the closed forms β^{g+1}e^{2β}/(g+1)! and 2(β/2)^{g+1}e^{2β}/(g+1)!", () => {
  // g = 2, β = 1: Taylor 1·e²/6, Chebyshev 2·(1/2)³·e²/6.
  assert.ok(Math.abs(analyticBound("taylor", 2, 1) - Math.exp(2) / 6) <= 1e-15);
  assert.ok(Math.abs(analyticBound("chebyshev", 2, 1) - (2 * 0.125 * Math.exp(2)) / 6) <= 1e-15);
  // Both decrease in g once g + 2 > β (β = 1.5 here) and increase in β.
  for (const family of FAMILIES) {
    for (let g = 0; g < 20; g++) {
      assert.ok(analyticBound(family, g + 1, 1.5) < analyticBound(family, g, 1.5));
      assert.ok(analyticBound(family, g, 1) < analyticBound(family, g, 2));
    }
  }
});

Deno.test("expPoly: Taylor coefficients are 1/t!, the Chebyshev interpolant matches exp at its nodes", () => {
  const t = expPoly("taylor", 6, 2);
  let fact = 1;
  t.coeffs.forEach((c, i) => {
    if (i > 0) fact *= i;
    assert.ok(Math.abs(c - 1 / fact) <= 1e-16, `taylor coefficient ${i}`);
  });
  for (const beta of [0.05, 0.5, 1, 2, 4]) {
    for (let g = 0; g <= 16; g++) {
      const p = expPoly("chebyshev", g, beta);
      const n = g + 1;
      for (let j = 0; j < n; j++) {
        const x = beta * Math.cos((Math.PI * (j + 0.5)) / n);
        // Interpolation holds exactly in exact arithmetic. In float64 the node sums cost ≈ n·2^-53
        // of Σ|c_k|, and the change to monomials (|T_k| coefficients up to (1+√2)^k) plus Horner
        // amplify that by at most Σ_t |p_t| β^t / e^{−β} ≤ e^{2β}·(1+√2)^16 ≈ 1e9 for β ≤ 4, g ≤ 16:
        // 1e-9 relative is far above that noise and far below any real interpolation error.
        const rel = Math.abs(horner(p.coeffs, x) - Math.exp(x)) / Math.exp(x);
        assert.ok(rel <= 1e-9, `chebyshev β=${beta} g=${g} node ${j}: ${rel}`);
      }
    }
  }
  // β = 0 degenerates to Taylor (the Chebyshev nodes collapse).
  assert.deepEqual(expPoly("chebyshev", 3, 0).coeffs, expPoly("taylor", 3, 0).coeffs);
});

Deno.test("evalPoly and measureRelError agree with independent evaluations", () => {
  const p = [0.5, -1.25, 2, 0.125];
  for (const x of [-3, -0.5, 0, 0.7, 2.5]) assert.equal(evalPoly(p, x), horner(p, x));
  const q = expPoly("chebyshev", 5, 1.5);
  const mine = fineMeasure(q.coeffs, 1.5, 4097);
  const theirs = measureRelError(q.coeffs, 1.5);
  // Same 4097-point grid (endpoint rounding aside): same maximum to float64 noise.
  assert.ok(Math.abs(mine.max - theirs.max) <= 1e-12 * mine.max + SLACK);
  assert.ok(theirs.positive);
  // P(x) = x is not positive on [−1, 1].
  assert.equal(measureRelError([0, 1], 1).positive, false);
});

Deno.test("smallestDegree: Chebyshev never needs a higher degree than Taylor for β ≥ 2", () => {
  for (const beta of [2, 2.5, 3, 4, 5, 6, 7, 8]) {
    for (const eps of EPSILONS) {
      const taylor = smallestDegree("taylor", beta, eps);
      const cheb = smallestDegree("chebyshev", beta, eps);
      assert.ok(cheb, `chebyshev β=${beta} ε=${eps} has no degree`);
      if (taylor) assert.ok(cheb.degree <= taylor.degree, `β=${beta} ε=${eps}: ${cheb.degree} > ${taylor.degree}`);
    }
  }
});

/** Monomials of degree ≤ g in d variables, counted by recursion over the first exponent. */
function countMonomials(d: number, g: number): number {
  if (d === 0) return 1;
  let n = 0;
  for (let a = 0; a <= g; a++) n += countMonomials(d - 1, g - a);
  return n;
}

Deno.test("rank(d, g) = C(d+g, g) = the number of monomials of degree ≤ g", () => {
  for (let d = 1; d <= 9; d++) {
    for (let g = 0; g <= 6; g++) {
      assert.equal(rank(d, g), countMonomials(d, g), `d=${d} g=${g}`);
      assert.equal(rank(d, g), binomial(d + g, g));
    }
  }
  // Pascal's rule and symmetry as an independent check of binomial itself (n ≤ 55: see below).
  for (let n = 1; n <= 55; n++) {
    for (let k = 1; k < n; k++) {
      assert.equal(binomial(n, k), binomial(n - 1, k - 1) + binomial(n - 1, k), `C(${n},${k})`);
      assert.equal(binomial(n, k), binomial(n, n - k));
    }
  }
  assert.equal(binomial(7, 0), 1);
  assert.equal(binomial(7, 7), 1);
});

/** C(n, k) in exact integer arithmetic. */
function exactBinomial(n: number, k: number): bigint {
  let r = 1n;
  for (let i = 1; i <= k; i++) r = (r * BigInt(n - k + i)) / BigInt(i);
  return r;
}

Deno.test({
  name: "binomial is exact for every C(n, k) below 2^53, as documented",
  fn() {
    for (let n = 0; n <= 80; n++) {
      for (let k = 0; k <= n; k++) {
        const e = exactBinomial(n, k);
        if (e < 2n ** 53n) assert.equal(BigInt(binomial(n, k)), e, `C(${n},${k})`);
      }
    }
  },
});

Deno.test("binomial is exact for n ≤ 55", () => {
  for (let n = 0; n <= 55; n++) {
    for (let k = 0; k <= n; k++) assert.equal(BigInt(binomial(n, k)), exactBinomial(n, k), `C(${n},${k})`);
  }
});

Deno.test("paperRankBound = C(2(g+d), 2g): the table values", () => {
  assert.equal(rank(8, 2), 45);
  assert.equal(paperRankBound(8, 2), 4845);
  assert.equal(rank(64, 2), 2145);
  assert.equal(paperRankBound(64, 2), 12_082_785);
  for (let d = 1; d <= 12; d++) {
    for (let g = 0; g <= 4; g++) {
      assert.equal(paperRankBound(d, g), binomial(2 * (g + d), 2 * g));
      assert.ok(rank(d, g) <= paperRankBound(d, g), `d=${d} g=${g}: the exact rank is the smaller`);
    }
  }
});
