/**
 * @file The WebAssembly activations (elementwise_module.ts, run through elementwise.ts) against
 * float64, and how the `unary` kernel chooses between them and the JS formulas.
 *
 * Tolerances, with u = 2⁻²⁴ the unit roundoff of float32:
 * - exp: relative error ≤ E = 1.37·u where the result is normal and absolute ≤ 0.76·2⁻¹⁴⁹ where it
 *   is subnormal, the maxima over every float32 input rounded up (measured: 1.3683·u at
 *   x = 15.596843, 0.7503·2⁻¹⁴⁹). The clamp to [−104, 89] changes no result (e⁻¹⁰⁴ < 2⁻¹⁵⁰, e⁸⁹ >
 *   FLT_MAX), so ±∞, NaN and overflow (x ≥ 88.72283935546875) give exactly float32(Math.exp(x)).
 * - silu(x) = x / (1 + exp(−x)) and gelu_tanh(x) = x / (1 + exp(−z)), z = x·(G1 + G2·x²) with
 *   G1 = 2√(2/π), G2 = 0.044715·G1 (½(1 + tanh(z/2)) = σ(z)). Write e = exp(−z), g = x / (1 + e)
 *   and ê = e·(1 + η) for the computed exp(−ẑ). The kernel returns x / ((1 + ê)(1 + δa))·(1 + δd)
 *   with |δa|, |δd| ≤ u, and (1 + ê) / (1 + e) = 1 + η·(1 − σ(z)), so
 *     |ĝ/g − 1| ≤ (1 + u) / ((1 − u)(1 − H)) − 1 ≈ 2u + H,   H = |η|max·(1 − σ(z)).
 *   η holds the exp error and, for gelu, the rounding of z: ẑ = z·(1 + θ), |θ| ≤ ε_z = (1 + u)⁵ − 1
 *   (G2, x², G2·x², + G1 of positive terms, ·x: five roundings on the longest chain), so
 *   |η| ≤ e^(|z|·ε_z)·(1 + E) − 1; for silu z = x exactly (ε_z = 0). The factor 1 − σ(z) makes the
 *   bound 2u + E·e/(1 + e) for silu; for gelu at x < 0 the |z|·ε_z term dominates (|z| ≈ 6.7 at
 *   x = −3: about 37u), as in any float32 evaluation of z.
 *   Two absolute terms: where exp(−ẑ) overflows (ẑ < −88.72) the result is ∓0 while
 *   |g| < |x|·e^z < |x|·2⁻¹²⁷; a subnormal result rounds by up to 2⁻¹⁵⁰.
 *   The float64 references (the σ forms above) add at most 2⁻⁴⁰ relative.
 */
import assert from "node:assert/strict";
import { UNARY, unary } from "../kernels.ts";
import { randomF32 } from "../../random.ts";
import {
  ELEMENTWISE_CHUNK,
  elementwiseBackend,
  type ElementwiseFn,
  setElementwiseBackend,
  UNARY_WASM_MIN,
  unaryWasm,
} from "./elementwise.ts";

const U = 2 ** -24;
/** The exp bounds (see the file comment). */
const E = 1.37 * U, SUB = 0.76 * 2 ** -149;
const G1 = 2 * Math.sqrt(2 / Math.PI);
const EPS_Z = (1 + U) ** 5 - 1;
const FNS: readonly ElementwiseFn[] = ["silu", "gelu_tanh", "exp"];

/** The WASM result of fn over x (a fresh output). */
function wasm(x: Float32Array, fn: ElementwiseFn): Float32Array {
  const out = new Float32Array(x.length);
  assert.ok(unaryWasm(x, fn, out), "the WASM path is available");
  return out;
}

/** About `count` float32 values evenly spaced in bit-pattern order over [lo, hi]. */
function floatsBetween(lo: number, hi: number, count: number): Float32Array {
  const bits = new Int32Array(1), f = new Float32Array(bits.buffer);
  const key = (v: number) => (f[0] = v, bits[0]! < 0 ? -(bits[0]! & 0x7fffffff) : bits[0]!);
  const from = key(lo), to = key(hi), step = Math.max(1, Math.floor((to - from) / count));
  const out: number[] = [];
  for (let k = from; k <= to; k += step) {
    bits[0] = k < 0 ? (-k | 0x80000000) : k;
    out.push(f[0]!);
  }
  return Float32Array.from(out);
}

/** The exact value and the allowed |error| of the kernel at x (finite results). */
function reference(fn: ElementwiseFn, x: number): [number, number] {
  if (fn === "exp") {
    const e = Math.exp(x);
    return [e, e >= 2 ** -126 ? E * e : SUB];
  }
  const z = fn === "silu" ? x : G1 * (x + 0.044715 * x * x * x);
  const e = Math.exp(-z), g = x / (1 + e);
  const oneMinusSigma = Number.isFinite(e) ? e / (1 + e) : 1;
  const eta = Math.exp(Math.abs(z) * (fn === "silu" ? 0 : EPS_Z)) * (1 + E) - 1;
  // H ≥ 1/2 only for |z| > 10⁶, where g is x or ∓0 up to the absolute terms
  const H = oneMinusSigma > 0 ? eta * oneMinusSigma : 0;
  const rel = H < 0.5 ? (1 + U) / ((1 - U) * (1 - H)) - 1 + 2 ** -40 : 1;
  return [g, rel * Math.abs(g) + Math.abs(x) * 2 ** -127 + 2 ** -150];
}

/** Checks got against the reference at every x; returns the largest |error| / tolerance. */
function check(fn: ElementwiseFn, x: Float32Array, got: Float32Array, what: string): number {
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!, g = got[i]!;
    const js = Math.fround(UNARY[fn](v));
    if (!Number.isFinite(js)) {
      // ±∞ and NaN results of the JS formula (overflow, ±∞ and NaN inputs) are reproduced exactly
      assert.ok(Object.is(g, js), `${what}: ${fn}(${v}) = ${g}, the JS formula gives ${js}`);
      continue;
    }
    const [exact, tol] = reference(fn, v);
    const err = Math.abs(g - exact);
    if (!(err <= tol)) assert.fail(`${what}: ${fn}(${v}) = ${g}, exact ${exact}, error ${err} > ${tol}`);
    worst = Math.max(worst, err / tol);
  }
  return worst;
}

Deno.test("WebAssembly SIMD is available here and used by default", () => {
  assert.equal(elementwiseBackend(), "wasm");
});

Deno.test("exp: within E = 1.37·2⁻²⁴ (2⁻¹⁴⁹ scale when subnormal) over the float32 range; the bound is tight", () => {
  const x = floatsBetween(-110, 95, 600_000);
  const worst = check("exp", x, wasm(x, "exp"), "grid");
  assert.ok(worst > 0.5, `worst error / bound ${worst}: the bound is loose or the grid misses`);
  // overflow threshold, the last finite input, the clamp ends and the subnormal tail
  const edges = Float32Array.of(88.72283935546875, 88.72283172607422, 89, 1e30, -87.33654, -100, -103.97, -104, -1e30);
  const got = wasm(edges, "exp");
  check("exp", edges, got, "edges");
  assert.equal(got[0], Infinity);
  assert.ok(Number.isFinite(got[1]!) && got[1]! > 3.4e38);
  assert.ok(Object.is(got[7], 0) && Object.is(got[8], 0), `exp(−104), exp(−1e30): ${got[7]}, ${got[8]}`);
});

Deno.test("silu and gelu_tanh: within the derived bound on dense grids and random inputs", () => {
  const grid = floatsBetween(-120, 120, 400_000), dense = floatsBetween(-12, 12, 200_000);
  const random = randomF32(50_000, 7, 3);
  for (const fn of ["silu", "gelu_tanh"] as const) {
    for (const [x, what] of [[grid, "grid"], [dense, "dense"], [random, "random"]] as const) {
      check(fn, x, wasm(x, fn), `${what}`);
    }
  }
});

Deno.test("±∞, NaN, ±0 and large inputs: as the JS formulas where those are exact", () => {
  const x = Float32Array.of(Infinity, -Infinity, NaN, 0, -0, 100, -100, 10, -10, 1e20, -1e20, 3e38, -3e38);
  const got = Object.fromEntries(FNS.map((fn) => [fn, wasm(x, fn)])) as Record<ElementwiseFn, Float32Array>;
  for (const fn of FNS) {
    check(fn, x, got[fn], "specials");
    for (const i of [0, 1, 2]) {
      const js = Math.fround(UNARY[fn](x[i]!));
      assert.ok(Object.is(got[fn][i], js), `${fn}(${x[i]}) = ${got[fn][i]}, JS ${js}`);
    }
  }
  const { silu, gelu_tanh: gelu, exp } = got;
  assert.ok(Object.is(silu[3], 0) && Object.is(silu[4], -0), "silu(±0) = ±0");
  assert.ok(Object.is(gelu[3], 0) && Object.is(gelu[4], -0), "gelu_tanh(±0) = ±0");
  assert.equal(exp[3], 1), assert.equal(exp[4], 1);
  assert.equal(silu[5], 100, "silu(100)");
  assert.ok(silu[6]! <= 0 && silu[6]! > -(2 ** -126), `silu(−100) = ${silu[6]}: −0 or tiny`);
  assert.equal(gelu[7], 10, "gelu_tanh(10)");
  assert.ok(gelu[8]! < 0 && gelu[8]! > -1e-36, `gelu_tanh(−10) = ${gelu[8]}`); // exact −1.2e−37
  assert.equal(silu[9], Math.fround(1e20)), assert.ok(Object.is(silu[10], -0));
  assert.equal(gelu[9], Math.fround(1e20)), assert.ok(Object.is(gelu[10], -0));
  assert.equal(silu[11], Math.fround(3e38)), assert.equal(gelu[11], Math.fround(3e38));
});

Deno.test("any length and offset: lanes are independent, nothing past the end is written", () => {
  const base = randomF32(64, 11, 4);
  for (const fn of FNS) {
    const full = wasm(base, fn);
    for (let n = 0; n <= 41; n++) {
      for (let off = 0; off < 4; off++) {
        const out = new Float32Array(n + 8).fill(12345);
        assert.ok(unaryWasm(base.subarray(off, off + n), fn, out.subarray(0, n)));
        for (let i = 0; i < n; i++) assert.ok(Object.is(out[i], full[off + i]), `${fn} n=${n} off=${off} i=${i}`);
        for (let i = n; i < n + 8; i++) assert.equal(out[i], 12345, `${fn} n=${n}: wrote past the end`);
      }
    }
  }
});

Deno.test("arrays across several chunks, and in place", () => {
  const n = 2 * ELEMENTWISE_CHUNK + 5, x = randomF32(n, 12, 5);
  for (const fn of FNS) {
    const out = wasm(x, fn);
    check(fn, x, out, `${n} floats`);
    const inPlace = x.slice();
    assert.ok(unaryWasm(inPlace, fn, inPlace));
    assert.deepEqual(inPlace, out, `${fn} in place`);
  }
});

Deno.test("unary: WASM from UNARY_WASM_MIN floats, the JS formulas below it and with the js backend", () => {
  const big = randomF32(UNARY_WASM_MIN + 3, 13, 3), small = big.subarray(0, UNARY_WASM_MIN - 1);
  for (const fn of FNS) {
    assert.deepEqual(unary({ x: big, fn }), wasm(big, fn), `${fn}: large arrays take the WASM path`);
    assert.deepEqual(
      unary({ x: small, fn }),
      Float32Array.from(small, UNARY[fn]),
      `${fn}: small arrays take the formulas`,
    );
    setElementwiseBackend("js");
    try {
      assert.equal(unaryWasm(big, fn, new Float32Array(big.length)), false);
      assert.deepEqual(unary({ x: big, fn }), Float32Array.from(big, UNARY[fn]), `${fn}: js backend`);
    } finally {
      setElementwiseBackend("auto");
    }
  }
});
