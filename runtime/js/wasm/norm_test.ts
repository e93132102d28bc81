/**
 * @file The WebAssembly GroupNorm (+ SiLU) against a float64 reference.
 *
 * Tolerance per output, u = 2⁻²⁴: y = x·s + t is computed in float64 and rounded once to float32
 * (u·|y|). Before that, float64 errors: the statistics sum at most 2¹⁸ values per group in four
 * lanes, so mean and variance are within 2¹⁶·2⁻⁵³ = 2⁻³⁷ relative, and s, t and x·s + t within a
 * few times that of |x·s| + |t|, which is large where a channel far from its group's mean cancels;
 * the test allows u·|y| + 2⁻³⁰·(|x·s| + |t|). With SiLU, silu′ ≤ 1.1 carries that error through
 * and the SiLU itself is within (2u + 1.37u)·|silu| (elementwise_test.ts derives it), so the
 * allowance is 1.1 times the above plus 3.4u·|silu(y)|.
 */
import assert from "node:assert/strict";
import { groupNormWasm } from "./norm.ts";
import { setGemmThreads } from "./gemm.ts";
import { randomF32 } from "../../random.ts";

const U = 2 ** -24;

/** Float64 GroupNorm (+ SiLU) with per-output tolerances. */
function reference(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  B: number,
  C: number,
  S: number,
  groups: number,
  eps: number,
  silu: boolean,
) {
  const ref = new Float64Array(x.length), tol = new Float64Array(x.length), cg = C / groups, n = cg * S;
  for (let bi = 0; bi < B; bi++) {
    for (let g = 0; g < groups; g++) {
      const base = (bi * C + g * cg) * S;
      let mean = 0, v = 0;
      for (let i = 0; i < n; i++) mean += x[base + i]!;
      mean /= n;
      for (let i = 0; i < n; i++) v += (x[base + i]! - mean) ** 2;
      const inv = 1 / Math.sqrt(v / n + eps);
      for (let i = 0; i < n; i++) {
        const ch = g * cg + Math.floor(i / S), s = w[ch]! * inv, t = b[ch]! - mean * s, xs = x[base + i]! * s;
        const y = xs + t, e = U * Math.abs(y) + 2 ** -30 * (Math.abs(xs) + Math.abs(t));
        if (!silu) ref[base + i] = y, tol[base + i] = e;
        else {
          const a = y / (1 + Math.exp(-y));
          ref[base + i] = a, tol[base + i] = 1.1 * e + 3.4 * U * Math.abs(a) + 1e-37;
        }
      }
    }
  }
  return { ref, tol };
}

// [B, C, S, groups]: one group and several, channels far from zero, sizes on one thread and on all
const CASES: [number, number, number, number][] = [[2, 6, 32, 3], [1, 4, 16, 1], [2, 64, 1024, 32], [1, 32, 65536, 8]];

Deno.test("WASM GroupNorm and GroupNorm + SiLU match a float64 reference within the derived bound", () => {
  let seed = 300;
  for (const [B, C, S, groups] of CASES) {
    const x = randomF32(B * C * S, seed++), w = randomF32(C, seed++), b = randomF32(C, seed++);
    for (let i = 0; i < S; i++) x[i] = x[i]! * 3 + 1e3; // channel 0 far from the rest of its group
    for (const silu of [false, true]) {
      const out = new Float32Array(x.length).fill(NaN);
      assert.ok(groupNormWasm(x, w, b, B, C, S, groups, 1e-6, silu, out), "WASM path taken");
      const { ref, tol } = reference(x, w, b, B, C, S, groups, 1e-6, silu);
      let worst = 0;
      for (let i = 0; i < x.length; i++) {
        const err = Math.abs(out[i]! - ref[i]!);
        if (!(err <= tol[i]!)) {
          assert.fail(
            `B=${B} C=${C} S=${S} groups=${groups} silu=${silu}: [${i}] ${out[i]} vs ${ref[i]}, error ${err} > ${
              tol[i]
            }`,
          );
        }
        worst = Math.max(worst, err / tol[i]!);
      }
      assert.ok(worst > 0.01, `worst error / bound ${worst}: the bound is far from what is reached`);
    }
  }
});

Deno.test("WASM GroupNorm: same bits on one thread and on several; declines sizes it does not take", () => {
  const [B, C, S, groups] = [1, 32, 65536, 8];
  const x = randomF32(B * C * S, 9), w = randomF32(C, 10), b = randomF32(C, 11);
  const one = new Float32Array(x.length), all = new Float32Array(x.length);
  try {
    setGemmThreads(1);
    assert.ok(groupNormWasm(x, w, b, B, C, S, groups, 1e-6, true, one));
    setGemmThreads(2);
    assert.ok(groupNormWasm(x, w, b, B, C, S, groups, 1e-6, true, all));
  } finally {
    setGemmThreads(undefined);
  }
  assert.deepEqual(all, one);
  assert.equal(groupNormWasm(x.subarray(0, 4 * 7), w, b, 1, 4, 7, 2, 1e-6, false, new Float32Array(28)), false);
});
