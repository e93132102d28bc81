/**
 * @file Tests of the float32 JS kernels against naive float64 implementations written here.
 *
 * Tolerance: the kernels read float32 inputs, accumulate in float64 and round the result once to
 * float32, so |kernel − ref| ≤ 2^-24·|ref| plus float64 summation-order noise (≈ 1e-16 of the
 * summed magnitudes). Every comparison therefore allows |kernel − ref| ≤ ATOL + RTOL·|ref| with
 * RTOL = 1e-6 (≈ 17 float32 ulps) and ATOL = 1e-9 for results that cancel to (nearly) zero.
 * `binary`, `scalar` and `permute` compute one float64 operation per element (or copy) and round
 * once, so their fast paths are checked for exact equality with the rounded formula. Large `unary`
 * calls run in WebAssembly SIMD and have their own bounds (wasm/elementwise_test.ts).
 */
import assert from "node:assert/strict";
import { randomF32 } from "../../tests/_rng.ts";
import { collapsePermutation, collapseStrides } from "./loops.ts";
import {
  addMul,
  attention,
  type BINARY,
  binary,
  concat,
  conv2d,
  fullKeyRanges,
  gather,
  groupNorm,
  heads,
  interpolate,
  KernelError,
  type KeyRanges,
  l2Normalize,
  layerNorm,
  levelIds,
  linear,
  permute,
  resampleMatrix,
  SCALAR,
  scalar,
  scaleKeyRanges,
  slice,
  type UNARY,
  unary,
} from "./kernels.ts";

const RTOL = 1e-6;
const ATOL = 1e-9;

/** Asserts a float32 kernel result against a float64 reference within ATOL + RTOL·|ref|. */
function assertClose(actual: Float32Array, expected: ArrayLike<number>, what: string): void {
  assert.ok(actual instanceof Float32Array, `${what}: expected a Float32Array`);
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (!(Math.abs(a - e) <= ATOL + RTOL * Math.abs(e))) {
      assert.fail(`${what}: index ${i}: got ${a}, expected ${e} (diff ${Math.abs(a - e)})`);
    }
  }
}

const prod = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

/** Row-major strides of a contiguous tensor. */
function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  for (let d = shape.length - 1, acc = 1; d >= 0; d--) s[d] = acc, acc *= shape[d]!;
  return s;
}

/** Multi-index of flat index `f` in `shape`. */
function unflatten(f: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) idx[d] = f % shape[d]!, f = Math.floor(f / shape[d]!);
  return idx;
}

Deno.test("assertClose rejects a 1e-5 relative error (the tolerance is not vacuous)", () => {
  assert.throws(() => assertClose(Float32Array.of(1.00001), [1], "probe"));
  assertClose(Float32Array.of(Math.fround(1 / 3)), [1 / 3], "probe");
});

// ---------------------------------------------------------------------------------------------
// gather

Deno.test("gather: picks rows of the table", () => {
  const N = 5, C = 3;
  const table = randomF32(N * C, 1);
  const idx = Int32Array.of(4, 0, 2, 2, 1);
  const out = gather({ table, N, C, idx, what: "emb" });
  const ref: number[] = [];
  for (const r of idx) for (let c = 0; c < C; c++) ref.push(table[r * C + c]!);
  assert.deepEqual(Array.from(out), ref);
  assert.equal(gather({ table, N, C, idx: new Int32Array(0), what: "emb" }).length, 0);
});

Deno.test("gather: an out-of-range index throws KernelError naming the index and the range", () => {
  const table = randomF32(5 * 3, 2);
  for (const bad of [5, -1, 100]) {
    assert.throws(
      () => gather({ table, N: 5, C: 3, idx: Int32Array.of(1, bad, 0), what: "class_emb" }),
      (err: unknown) => {
        assert.ok(err instanceof KernelError, `not a KernelError: ${err}`);
        assert.equal(err.name, "KernelError");
        assert.ok(err.message.includes("class_emb"), err.message);
        assert.ok(err.message.includes(`index ${bad}`), err.message);
        assert.ok(err.message.includes("[0, 5)"), err.message);
        return true;
      },
    );
  }
});

// ---------------------------------------------------------------------------------------------
// linear

function linearRef(
  x: Float32Array,
  M: number,
  K: number,
  w: Float32Array,
  N: number,
  b: Float32Array | null,
): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      out[m * N + n] = s + (b ? b[n]! : 0);
    }
  }
  return out;
}

Deno.test("linear: M multiple of 4 or not, with and without bias", () => {
  let seed = 10;
  for (const [M, K, N] of [[1, 5, 3], [3, 8, 7], [4, 16, 5], [7, 13, 9], [10, 33, 6], [8, 1, 2]]) {
    for (const withBias of [false, true]) {
      const x = randomF32(M * K, seed++), w = randomF32(N * K, seed++, 0.5);
      const b = withBias ? randomF32(N, seed++) : null;
      assertClose(
        linear({ x, M, K, w, N, b, act: "none" }),
        linearRef(x, M, K, w, N, b),
        `linear M=${M} K=${K} N=${N} bias=${withBias}`,
      );
    }
  }
});

// ---------------------------------------------------------------------------------------------
// layerNorm, l2Normalize

Deno.test("layerNorm: zero mean, unit (biased) variance per row; a constant row becomes 0", () => {
  const C = 24, R = 5, eps = 1e-5;
  const x = randomF32(R * C, 20, 2);
  for (let i = 0; i < x.length; i++) x[i] = x[i]! + 3; // non-zero mean
  x.fill(1.25, 2 * C, 3 * C); // constant row
  const ref = new Float64Array(x.length);
  for (let r = 0; r < R; r++) {
    let mean = 0;
    for (let c = 0; c < C; c++) mean += x[r * C + c]!;
    mean /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c]! - mean) * (x[r * C + c]! - mean);
    v /= C;
    for (let c = 0; c < C; c++) ref[r * C + c] = (x[r * C + c]! - mean) / Math.sqrt(v + eps);
  }
  const out = layerNorm({ x, C, eps, s: null, b: null, T: 1 });
  assertClose(out, ref, "layerNorm");
  for (let c = 0; c < C; c++) assert.equal(out[2 * C + c], 0);
});

Deno.test("l2Normalize: unit rows; a zero row stays 0 (eps); a tiny row is divided by eps", () => {
  const D = 16, R = 5, eps = 1e-3;
  const x = randomF32(R * D, 30);
  x.fill(0, D, 2 * D); // zero row
  for (let c = 0; c < D; c++) x[3 * D + c] = Math.fround(1e-5 * (c - 7)); // norm < eps
  const ref = new Float64Array(x.length);
  for (let r = 0; r < R; r++) {
    let s = 0;
    for (let c = 0; c < D; c++) s += x[r * D + c]! * x[r * D + c]!;
    const norm = Math.max(Math.sqrt(s), eps);
    for (let c = 0; c < D; c++) ref[r * D + c] = x[r * D + c]! / norm;
  }
  const out = l2Normalize({ x, D, eps });
  assertClose(out, ref, "l2Normalize");
  for (let c = 0; c < D; c++) assert.ok(Object.is(out[D + c], 0), `zero row index ${c}: ${out[D + c]}`);
  let n2 = 0;
  for (let c = 0; c < D; c++) n2 += out[c]! * out[c]!;
  assert.ok(Math.abs(n2 - 1) < 1e-6, `row 0 norm² ${n2}`);
});

Deno.test("layerNorm and l2Normalize: odd and width-1 rows (accumulator tails), rows far from zero", () => {
  let seed = 35;
  for (const C of [1, 3, 7, 64, 129]) {
    const R = 4, x = randomF32(R * C, seed++);
    for (let c = 0; c < C; c++) x[C + c] = x[C + c]! + 1e4; // |mean| ≫ std: the variance is centred
    const ln = new Float64Array(x.length), l2 = new Float64Array(x.length);
    for (let r = 0; r < R; r++) {
      let mean = 0, s = 0;
      for (let c = 0; c < C; c++) mean += x[r * C + c]! / C, s += x[r * C + c]! ** 2;
      let v = 0;
      for (let c = 0; c < C; c++) v += (x[r * C + c]! - mean) ** 2 / C;
      for (let c = 0; c < C; c++) {
        ln[r * C + c] = (x[r * C + c]! - mean) / Math.sqrt(v + 1e-6);
        l2[r * C + c] = x[r * C + c]! / Math.max(Math.sqrt(s), 1e-12);
      }
    }
    assertClose(layerNorm({ x, C, eps: 1e-6, s: null, b: null, T: 1 }), ln, `layerNorm C=${C}`);
    assertClose(l2Normalize({ x, D: C, eps: 1e-12 }), l2, `l2Normalize D=${C}`);
  }
});

Deno.test("layerNorm with modulation: the bits of layerNorm, mul, add and add run apart", () => {
  // x [2, 3, C], s and b [2, 1, C] (row r of x takes row ⌊r / 3⌋): h + h·s + b
  const C = 40, T = 3, x = randomF32(2 * T * C, 61), s = randomF32(2 * C, 62), b = randomF32(2 * C, 63);
  const h = layerNorm({ x, C, eps: 1e-6, s: null, b: null, T: 1 });
  const shape = [2, T, C], full = [T * C, C, 1], row = [C, 0, 1];
  const hs = binary({ a: h, b: s, fn: "mul", shape, aStrides: full, bStrides: row });
  const sum = binary({ a: h, b: hs, fn: "add", shape, aStrides: full, bStrides: full });
  const want = binary({ a: sum, b, fn: "add", shape, aStrides: full, bStrides: row });
  assert.deepEqual(layerNorm({ x, C, eps: 1e-6, s, b, T }), want);
});

// ---------------------------------------------------------------------------------------------
// unary, scalar, binary

Deno.test("unary: silu, gelu_tanh, exp", () => {
  const x = randomF32(200, 40, 3); // below UNARY_WASM_MIN: the float64 formulas
  x.set([0, -8, 8, 1e-4, -1e-4, 0.5, -0.5], 0);
  const refs: Record<keyof typeof UNARY, (v: number) => number> = {
    silu: (v) => v * (1 / (1 + Math.exp(-v))),
    gelu_tanh: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
    exp: (v) => Math.exp(v),
  };
  for (const fn of Object.keys(refs) as (keyof typeof UNARY)[]) {
    assertClose(unary({ x, fn }), Array.from(x, refs[fn]), `unary ${fn}`);
  }
  // Spot values.
  assert.equal(unary({ x: Float32Array.of(0), fn: "silu" })[0], 0);
  assert.equal(unary({ x: Float32Array.of(0), fn: "gelu_tanh" })[0], 0);
  assert.equal(unary({ x: Float32Array.of(0), fn: "exp" })[0], 1);
});

Deno.test("scalar: mul, add, min, max", () => {
  const x = randomF32(50, 50);
  const cases: [keyof typeof SCALAR, number, (v: number) => number][] = [
    ["mul", -2.5, (v) => v * -2.5],
    ["add", 0.75, (v) => v + 0.75],
    ["min", 0.1, (v) => (v < 0.1 ? v : 0.1)],
    ["max", -0.2, (v) => (v > -0.2 ? v : -0.2)],
  ];
  for (const [fn, c, ref] of cases) assertClose(scalar({ x, fn, value: c }), Array.from(x, ref), `scalar ${fn} ${c}`);
});

/** Naive broadcast: inputs right-aligned against `shape`, size-1 axes repeat. */
function binaryRef(
  a: Float32Array,
  aShape: readonly number[],
  b: Float32Array,
  bShape: readonly number[],
  shape: readonly number[],
  f: (x: number, y: number) => number,
): Float64Array {
  const at = (t: Float32Array, tShape: readonly number[], idx: number[]) => {
    const off = idx.length - tShape.length;
    let flat = 0;
    for (let d = 0; d < tShape.length; d++) flat = flat * tShape[d]! + (tShape[d] === 1 ? 0 : idx[d + off]!);
    return t[flat]!;
  };
  const out = new Float64Array(prod(shape));
  for (let o = 0; o < out.length; o++) {
    const idx = unflatten(o, shape);
    out[o] = f(at(a, aShape, idx), at(b, bShape, idx));
  }
  return out;
}

Deno.test("binary: add, sub, mul with broadcasting (strides given by hand)", () => {
  // [shape, aShape, aStrides, bShape, bStrides]
  const cases: [number[], number[], number[], number[], number[]][] = [
    [[2, 3, 4], [3, 1], [0, 1, 0], [1, 4], [0, 0, 1]],
    [[2, 3, 4], [2, 3, 4], [12, 4, 1], [4], [0, 0, 1]],
    [[2, 3, 4], [2, 1, 4], [4, 0, 1], [2, 3, 1], [3, 1, 0]],
    [[2, 3, 4], [1], [0, 0, 0], [2, 3, 4], [12, 4, 1]],
    [[5], [5], [1], [1], [0]],
    [[2, 3, 2, 5], [2, 1, 2, 1], [2, 0, 1, 0], [3, 1, 5], [0, 5, 0, 1]],
  ];
  const refs: Record<keyof typeof BINARY, (x: number, y: number) => number> = {
    add: (x, y) => x + y,
    sub: (x, y) => x - y,
    mul: (x, y) => x * y,
  };
  let seed = 60;
  for (const [shape, aShape, as, bShape, bs] of cases) {
    const a = randomF32(prod(aShape), seed++), b = randomF32(prod(bShape), seed++);
    for (const fn of Object.keys(refs) as (keyof typeof BINARY)[]) {
      assertClose(
        binary({ a, b, fn, shape, aStrides: as, bStrides: bs }),
        binaryRef(a, aShape, b, bShape, shape, refs[fn]),
        `binary ${fn} [${shape}] a[${aShape}] b[${bShape}]`,
      );
    }
  }
});

/** Input strides over `out` as the compiler computes them (compiler/backends/dims.ts). */
function broadcastStrides(input: readonly number[], out: readonly number[]): number[] {
  const offset = out.length - input.length;
  return out.map((d, i) => {
    const j = i - offset;
    return j < 0 || (input[j] === 1 && d !== 1) ? 0 : prod(input.slice(j + 1));
  });
}

/** Random values with NaN, ±∞ and ±0 among them. */
function withSpecials(n: number, seed: number): Float32Array {
  const x = randomF32(n, seed);
  [NaN, Infinity, -Infinity, 0, -0].forEach((v, i) => i * 7 < n && (x[i * 7] = v));
  return x;
}

/** Asserts out[i] is exactly the float32 rounding of ref[i] (NaN matches NaN, −0 only −0). */
function assertExact(out: Float32Array, ref: ArrayLike<number>, what: string): void {
  assert.equal(out.length, ref.length, `${what}: length`);
  for (let i = 0; i < ref.length; i++) {
    if (!Object.is(out[i], Math.fround(ref[i]!))) assert.fail(`${what}: index ${i}: ${out[i]} vs ${ref[i]}`);
  }
}

const BINARY_REFS: Record<keyof typeof BINARY, (x: number, y: number) => number> = {
  add: (x, y) => x + y,
  sub: (x, y) => x - y,
  mul: (x, y) => x * y,
};

Deno.test("binary fast paths: each broadcast pattern collapses as expected and matches exactly", () => {
  // [out, a, b, collapsed out]
  const cases: [number[], number[], number[], number[]][] = [
    [[2, 3, 5], [2, 3, 5], [2, 3, 5], [30]], // same shape: one contiguous block
    [[4, 7], [4, 7], [4, 1], [4, 7]], // per-row scalar (b constant along rows)
    [[4, 7], [4, 1], [4, 7], [4, 7]], // the same on the left (sub is not symmetric)
    [[2, 5, 7], [2, 5, 7], [7], [10, 7]], // row vector repeated over rows
    [[2, 5, 7], [7], [2, 5, 7], [10, 7]],
    [[2, 5, 7], [2, 5, 7], [2, 1, 7], [2, 5, 7]], // a row vector per batch (AdaLN modulation)
    [[1, 3, 4, 5], [1, 3, 4, 5], [1, 3, 1, 1], [3, 20]], // channel-wise, [B, C, 1, 1] with B = 1
    [[2, 3, 4, 5], [2, 3, 4, 5], [3, 1, 1], [2, 3, 20]], // channel-wise with a walked batch axis
    [[2, 3, 4, 5], [1, 3, 1, 1], [2, 3, 4, 5], [2, 3, 20]],
    [[2, 3, 6, 4], [2, 3, 6, 4], [1, 3, 1, 1], [2, 3, 24]], // per head: q [B, H, T, D] · τ [1, H, 1, 1]
    [[9], [9], [1], [9]], // scalar
    [[9], [1], [9], [9]],
    [[1, 6, 8], [1, 6, 8], [1, 6, 8], [48]], // size-1 axes
    [[3, 1, 5], [3, 1, 5], [1, 1, 5], [3, 5]],
    [[2, 1, 3], [2, 1, 1], [1, 1, 3], [2, 3]], // outer product: a constant along rows, b per row
    [[], [], [], []], // rank 0
  ];
  let seed = 66;
  for (const [shape, aShape, bShape, collapsed] of cases) {
    const as = broadcastStrides(aShape, shape), bs = broadcastStrides(bShape, shape);
    assert.deepEqual(collapseStrides(shape, as, bs).shape, collapsed, `collapse [${shape}] a[${aShape}] b[${bShape}]`);
    const a = withSpecials(prod(aShape), seed++), b = withSpecials(prod(bShape), seed++);
    for (const fn of Object.keys(BINARY_REFS) as (keyof typeof BINARY)[]) {
      assertExact(
        binary({ a, b, fn, shape, aStrides: as, bStrides: bs }),
        binaryRef(a, aShape, b, bShape, shape, BINARY_REFS[fn]),
        `binary ${fn} [${shape}] a[${aShape}] b[${bShape}]`,
      );
    }
  }
  assert.equal(
    binary({
      a: new Float32Array(0),
      b: Float32Array.of(1, 2, 3),
      fn: "add",
      shape: [2, 0, 3],
      aStrides: [0, 3, 1],
      bStrides: [0, 0, 1],
    }).length,
    0,
  );
});

Deno.test("addMul: exactly binary mul then add, over the gate, broadcast and general patterns", () => {
  // [out, a, b, c]: the AdaLN gate x + γ·f (γ [B, 1, C]), each operand broadcast in turn, size-1
  // axes, an inner broadcast of a (the general loop), rank 0
  const cases: [number[], number[], number[], number[]][] = [
    [[2, 5, 7], [2, 5, 7], [2, 1, 7], [2, 5, 7]],
    [[2, 5, 7], [2, 5, 7], [2, 5, 7], [2, 5, 7]],
    [[2, 5, 7], [2, 5, 7], [2, 5, 7], [7]],
    [[2, 5, 7], [2, 5, 1], [2, 5, 7], [2, 1, 7]],
    [[1, 6, 1, 8], [1, 6, 1, 8], [1, 1, 1, 8], [1, 6, 1, 8]],
    [[3, 4], [3, 1], [3, 4], [4]],
    [[], [], [], []],
  ];
  let seed = 80;
  for (const [shape, aShape, bShape, cShape] of cases) {
    const [as, bs, cs] = [aShape, bShape, cShape].map((t) => broadcastStrides(t, shape));
    const a = withSpecials(prod(aShape), seed++), b = withSpecials(prod(bShape), seed++);
    const c = withSpecials(prod(cShape), seed++);
    const product = binary({ a: b, b: c, fn: "mul", shape, aStrides: bs!, bStrides: cs! });
    const want = binary({ a, b: product, fn: "add", shape, aStrides: as!, bStrides: broadcastStrides(shape, shape) });
    const got = addMul({ a, b, c, shape, aStrides: as!, bStrides: bs!, cStrides: cs! });
    assertExact(got, want, `addMul [${shape}] a[${aShape}] b[${bShape}] c[${cShape}]`);
  }
});

Deno.test("heads: exactly slice, permute, l2Normalize and mul by τ (every combination, odd D, zero rows)", () => {
  // [B, T, W, start, H, D]: the k of a packed q|k|v projection with odd D (accumulator tails); a whole row
  const cases = [[2, 3, 60, 20, 4, 5], [1, 4, 16, 0, 2, 8]] as const;
  let seed = 90;
  for (const [B, T, W, start, H, D] of cases) {
    const x = randomF32(B * T * W, seed++), tau = randomF32(H, seed++);
    x.fill(0, start, start + D); // a zero row: eps keeps it finite
    const cut = slice({ x, outer: B * T, size: W, inner: 1, start, end: start + H * D });
    const split = permute({ x: cut, shape: [B, T, H, D], perm: [0, 2, 1, 3] });
    const shape = [B, H, T, D], strides = broadcastStrides(shape, shape);
    for (const eps of [null, 1e-12]) {
      const normed = eps === null ? split : l2Normalize({ x: split, D, eps });
      for (const t of [null, tau]) {
        const want = t
          ? binary({ a: normed, b: t, fn: "mul", shape, aStrides: strides, bStrides: [0, 1, 0, 0] })
          : normed;
        const got = heads({ x, rows: B * T, T, W, start, H, D, eps, tau: t });
        assertExact(got, want, `heads [${B}, ${T}, ${W}] start ${start} eps ${eps} τ ${t !== null}`);
      }
    }
  }
});

Deno.test("binary: inner strides other than 0 and 1 take the general loop", () => {
  // a is the transpose of a [5, 3] tensor (strides [1, 3]); b is [5] broadcast down the columns
  const a = withSpecials(15, 70), b = withSpecials(5, 71);
  for (const fn of Object.keys(BINARY_REFS) as (keyof typeof BINARY)[]) {
    const ref = new Float64Array(15);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) ref[i * 5 + j] = BINARY_REFS[fn](a[i + 3 * j]!, b[j]!);
    assertExact(
      binary({ a, b, fn, shape: [3, 5], aStrides: [1, 3], bStrides: [0, 1] }),
      ref,
      `binary ${fn} transposed a`,
    );
  }
});

Deno.test("scalar: exactly the SCALAR formulas, NaN, ±∞ and ±0 included", () => {
  const x = withSpecials(41, 55);
  for (const fn of Object.keys(SCALAR) as (keyof typeof SCALAR)[]) {
    for (const c of [-2.5, 0, -0, 0.1, Infinity, NaN]) {
      assertExact(scalar({ x, fn, value: c }), Array.from(x, (v) => SCALAR[fn](v, c)), `scalar ${fn} ${c}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// permute, slice, concat

function permuteRef(x: ArrayLike<number>, shape: readonly number[], perm: readonly number[]): number[] {
  const outShape = perm.map((p) => shape[p]!);
  const inStrides = contiguousStrides(shape);
  const out = new Array<number>(x.length);
  for (let o = 0; o < x.length; o++) {
    const j = unflatten(o, outShape);
    let src = 0;
    for (let d = 0; d < perm.length; d++) src += j[d]! * inStrides[perm[d]!]!;
    out[o] = x[src]!;
  }
  return out;
}

Deno.test("permute: rank 3 and 4, Float32Array and Int32Array", () => {
  const cases: [number[], number[]][] = [
    [[2, 3, 4], [0, 1, 2]],
    [[2, 3, 4], [2, 0, 1]],
    [[2, 3, 4], [1, 2, 0]],
    [[2, 3, 4], [0, 2, 1]],
    [[2, 3, 4], [2, 1, 0]],
    [[2, 3, 4, 5], [0, 2, 1, 3]],
    [[2, 3, 4, 5], [3, 1, 0, 2]],
    [[2, 3, 4, 5], [0, 1, 3, 2]],
    [[2, 3, 4, 5], [3, 2, 1, 0]],
  ];
  let seed = 80;
  for (const [shape, perm] of cases) {
    const f = randomF32(prod(shape), seed++);
    const outF = permute({ x: f, shape, perm });
    assert.ok(outF instanceof Float32Array);
    assert.deepEqual(Array.from(outF), permuteRef(f, shape, perm), `f32 [${shape}] perm [${perm}]`);
    const i = Int32Array.from({ length: prod(shape) }, (_, k) => k * 7 - 50);
    const outI = permute({ x: i, shape, perm });
    assert.ok(outI instanceof Int32Array);
    assert.deepEqual(Array.from(outI), permuteRef(i, shape, perm), `i32 [${shape}] perm [${perm}]`);
  }
  // One hand-checked case: [2,3] viewed as rank 3 [1,2,3] transposed to [3,2,1].
  assert.deepEqual(Array.from(permute({ x: Int32Array.of(0, 1, 2, 3, 4, 5), shape: [1, 2, 3], perm: [2, 1, 0] })), [
    0,
    3,
    1,
    4,
    2,
    5,
  ]);
});

Deno.test("permute fast paths: collapsed shapes, tiled transposes past the tile size, bit-exact copies", () => {
  // [shape, perm, collapsed shape, collapsed perm]
  const cases: [number[], number[], number[], number[]][] = [
    [[70, 130], [1, 0], [70, 130], [1, 0]], // 2-D, partial tiles at both ends
    [[2, 65, 67], [0, 2, 1], [2, 65, 67], [0, 2, 1]], // batched 2-D
    [[2, 3, 5, 7], [0, 2, 3, 1], [2, 3, 35], [0, 2, 1]], // [B, C, H, W] -> [B, H, W, C]
    [[1, 9, 4], [0, 2, 1], [9, 4], [1, 0]], // [B, T, C] -> [B, C, T] with B = 1
    [[2, 5, 3, 7], [0, 2, 1, 3], [2, 5, 3, 7], [0, 2, 1, 3]], // head split [B, T, H, D]
    [[5, 3, 7], [1, 0, 2], [5, 3, 7], [1, 0, 2]], // runs of the last axis, no batch
    [[1, 5, 1, 3, 7], [0, 3, 2, 1, 4], [5, 3, 7], [1, 0, 2]], // size-1 axes anywhere
    [[2, 3, 4], [1, 2, 0], [2, 12], [1, 0]], // merged trailing axes
    [[2, 3, 4, 5], [3, 2, 1, 0], [2, 3, 4, 5], [3, 2, 1, 0]], // general walk
    [[1, 1, 1], [2, 0, 1], [], []], // one element
    [[3, 0, 2], [2, 1, 0], [3, 0, 2], [2, 1, 0]], // empty
  ];
  let seed = 85;
  for (const [shape, perm, cShape, cPerm] of cases) {
    assert.deepEqual(collapsePermutation(shape, perm), { shape: cShape, perm: cPerm }, `collapse [${shape}] [${perm}]`);
    const i = Int32Array.from(randomF32(prod(shape), seed++), (v) => Math.round(v * 1e6));
    assert.deepEqual(
      Array.from(permute({ x: i, shape, perm })),
      permuteRef(i, shape, perm),
      `i32 [${shape}] [${perm}]`,
    );
    // float32 values as bit patterns, NaN payloads among them
    const bits = Uint32Array.from({ length: prod(shape) }, (_, k) => (k % 5 === 0 ? 0x7fc00001 + k : 0x3f800000 + k));
    const f = new Float32Array(bits.buffer), outBits = new Uint32Array(permute({ x: f, shape, perm }).buffer);
    assert.deepEqual(Array.from(outBits), permuteRef(bits, shape, perm), `f32 bits [${shape}] [${perm}]`);
  }
});

Deno.test("slice: [outer, size, inner] along the middle axis, Float32Array and Int32Array", () => {
  const cases: [number, number, number, number, number][] = [
    [3, 7, 4, 2, 5],
    [3, 7, 4, 0, 7],
    [3, 7, 4, 6, 7],
    [2, 5, 1, 1, 3],
    [1, 6, 3, 0, 2],
    [2, 4, 3, 2, 2],
  ];
  for (const [outer, size, inner, start, end] of cases) {
    const x = randomF32(outer * size * inner, 90);
    const xi = Int32Array.from(x, (v) => Math.round(v * 1000));
    const ref: number[] = [], refI: number[] = [];
    for (let o = 0; o < outer; o++) {
      for (let s = start; s < end; s++) {
        for (let i = 0; i < inner; i++) {
          ref.push(x[(o * size + s) * inner + i]!), refI.push(xi[(o * size + s) * inner + i]!);
        }
      }
    }
    const what = `slice ${outer}x${size}x${inner} [${start}, ${end})`;
    const out = slice({ x, outer, size, inner, start, end });
    assert.ok(out instanceof Float32Array);
    assert.deepEqual(Array.from(out), ref, what);
    const outI = slice({ x: xi, outer, size, inner, start, end });
    assert.ok(outI instanceof Int32Array);
    assert.deepEqual(Array.from(outI), refI, what);
  }
});

Deno.test("concat: joins along the middle axis", () => {
  const cases: [number, number[], number][] = [[3, [2, 1, 3], 4], [1, [2, 5], 3], [4, [1, 1], 1], [2, [3], 2]];
  let seed = 100;
  for (const [outer, sizes, inner] of cases) {
    const xs = sizes.map((s) => randomF32(outer * s * inner, seed++));
    const ref: number[] = [];
    for (let o = 0; o < outer; o++) {
      xs.forEach((x, t) => {
        for (let s = 0; s < sizes[t]!; s++) {
          for (let i = 0; i < inner; i++) ref.push(x[(o * sizes[t]! + s) * inner + i]!);
        }
      });
    }
    assert.deepEqual(Array.from(concat({ xs, outer, sizes, inner })), ref, `concat ${outer} [${sizes}] ${inner}`);
  }
});

// ---------------------------------------------------------------------------------------------
// schedules and masks

/** Scale of every token, written independently of levelIds. */
function levelsOf(schedule: readonly number[]): number[] {
  const out: number[] = [];
  for (let s = 0; s < schedule.length; s++) for (let t = 0; t < schedule[s]! * schedule[s]!; t++) out.push(s);
  return out;
}

/** visible[i][j]: query token i may attend to key token j (scale window; Infinity = block-causal). */
function scaleMask(schedule: readonly number[], window: number): boolean[][] {
  const lev = levelsOf(schedule);
  return lev.map((li) => lev.map((lj) => lj <= li && lj > li - window));
}

Deno.test("levelIds: scale index of every token", () => {
  assert.deepEqual(Array.from(levelIds({ schedule: [1, 2, 3] })), [0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
  const ids = levelIds({ schedule: [1, 2, 3, 4, 5] });
  assert.ok(ids instanceof Int32Array);
  assert.deepEqual(Array.from(ids), levelsOf([1, 2, 3, 4, 5]));
  assert.equal(ids.length, 1 + 4 + 9 + 16 + 25);
});

Deno.test("scaleKeyRanges: block-causal, window 2 and window 1, by hand", () => {
  const s = [1, 2, 3];
  const rep = (v: number, n: number) => new Array<number>(n).fill(v);
  const causal = scaleKeyRanges(s, Infinity);
  assert.deepEqual(Array.from(causal.lo), rep(0, 14));
  assert.deepEqual(Array.from(causal.hi), [1, ...rep(5, 4), ...rep(14, 9)]);
  const w2 = scaleKeyRanges(s, 2);
  assert.deepEqual(Array.from(w2.lo), [0, ...rep(0, 4), ...rep(1, 9)]);
  assert.deepEqual(Array.from(w2.hi), [1, ...rep(5, 4), ...rep(14, 9)]);
  const w1 = scaleKeyRanges(s, 1);
  assert.deepEqual(Array.from(w1.lo), [0, ...rep(1, 4), ...rep(5, 9)]);
  assert.deepEqual(Array.from(w1.hi), [1, ...rep(5, 4), ...rep(14, 9)]);
});

Deno.test("scaleKeyRanges: each query sees exactly the keys of its mask (schedule 1,2,3,4,6)", () => {
  const schedule = [1, 2, 3, 4, 6];
  for (const window of [Infinity, 2, 1, 3, 100]) {
    const mask = scaleMask(schedule, window);
    const { lo, hi } = scaleKeyRanges(schedule, window);
    assert.equal(lo.length, mask.length);
    assert.equal(hi.length, mask.length);
    mask.forEach((row, i) => {
      row.forEach((vis, j) => {
        assert.equal(lo[i]! <= j && j < hi[i]!, vis, `window ${window}: query ${i}, key ${j}`);
      });
    });
  }
});

Deno.test("fullKeyRanges: every query sees all keys", () => {
  const r = fullKeyRanges(5, 9);
  assert.deepEqual(Array.from(r.lo), [0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(r.hi), [9, 9, 9, 9, 9]);
});

// ---------------------------------------------------------------------------------------------
// attention

/** Two-pass softmax(scale·q kᵀ) v over an explicit mask matrix (null = no mask). */
function attentionRef(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  BH: number,
  Tq: number,
  Tk: number,
  D: number,
  Dv: number,
  scale: number,
  mask: boolean[][] | null,
): Float64Array {
  const out = new Float64Array(BH * Tq * Dv);
  for (let bh = 0; bh < BH; bh++) {
    for (let i = 0; i < Tq; i++) {
      const scores = new Array<number>(Tk).fill(-Infinity);
      for (let j = 0; j < Tk; j++) {
        if (mask && !mask[i]![j]) continue;
        let s = 0;
        for (let d = 0; d < D; d++) s += q[(bh * Tq + i) * D + d]! * k[(bh * Tk + j) * D + d]!;
        scores[j] = scale * s;
      }
      const max = Math.max(...scores);
      const p = scores.map((s) => Math.exp(s - max));
      const sum = p.reduce((a, b) => a + b, 0);
      for (let e = 0; e < Dv; e++) {
        let acc = 0;
        for (let j = 0; j < Tk; j++) acc += p[j]! * v[(bh * Tk + j) * Dv + e]!;
        out[(bh * Tq + i) * Dv + e] = acc / sum;
      }
    }
  }
  return out;
}

Deno.test("attention: block-causal and window-2 scale masks against an explicit mask matrix", () => {
  const schedule = [1, 2, 3];
  const L = 14, BH = 3, D = 8, Dv = 5, scale = 0.6;
  let seed = 120;
  for (const qScale of [1, 4]) { // 4: peaked softmax, exercises the running max
    const q = randomF32(BH * L * D, seed++, qScale), k = randomF32(BH * L * D, seed++);
    const v = randomF32(BH * L * Dv, seed++);
    for (const window of [Infinity, 2]) {
      const ranges: KeyRanges = scaleKeyRanges(schedule, window);
      assertClose(
        attention({ q, k, v, BH, Tq: L, Tk: L, D, Dv, scale, ranges }),
        attentionRef(q, k, v, BH, L, L, D, Dv, scale, scaleMask(schedule, window)),
        `attention window=${window} qScale=${qScale}`,
      );
    }
  }
});

Deno.test("attention: no mask, Tq != Tk, D != Dv", () => {
  const BH = 2, Tq = 5, Tk = 9, D = 4, Dv = 7, scale = 0.5;
  const q = randomF32(BH * Tq * D, 130, 2), k = randomF32(BH * Tk * D, 131), v = randomF32(BH * Tk * Dv, 132);
  assertClose(
    attention({ q, k, v, BH, Tq, Tk, D, Dv, scale, ranges: fullKeyRanges(Tq, Tk) }),
    attentionRef(q, k, v, BH, Tq, Tk, D, Dv, scale, null),
    "attention unmasked",
  );
});

// ---------------------------------------------------------------------------------------------
// conv2d

function conv2dRef(
  x: Float32Array,
  B: number,
  Ci: number,
  H: number,
  W: number,
  w: Float32Array,
  Co: number,
  kh: number,
  kw: number,
  b: Float32Array,
  pad: number,
): { out: Float64Array; Ho: number; Wo: number } {
  const Ho = H + 2 * pad - kh + 1, Wo = W + 2 * pad - kw + 1;
  const out = new Float64Array(B * Co * Ho * Wo);
  for (let n = 0; n < B; n++) {
    for (let co = 0; co < Co; co++) {
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          let s = b[co]!;
          for (let ci = 0; ci < Ci; ci++) {
            for (let dy = 0; dy < kh; dy++) {
              for (let dx = 0; dx < kw; dx++) {
                const iy = oy + dy - pad, ix = ox + dx - pad;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                s += w[((co * Ci + ci) * kh + dy) * kw + dx]! * x[((n * Ci + ci) * H + iy) * W + ix]!;
              }
            }
          }
          out[((n * Co + co) * Ho + oy) * Wo + ox] = s;
        }
      }
    }
  }
  return { out, Ho, Wo };
}

Deno.test("conv2d: padding 1 and 0, Ci != Co, non-square input, non-square kernel", () => {
  // [B, Ci, H, W, Co, kh, kw, pad]
  const cases: number[][] = [
    [2, 3, 5, 7, 4, 3, 3, 1],
    [2, 3, 5, 7, 4, 3, 3, 0],
    [1, 4, 6, 3, 2, 1, 1, 0],
    [1, 2, 4, 5, 3, 3, 1, 1],
    [1, 2, 3, 3, 5, 3, 3, 1],
  ];
  let seed = 140;
  for (
    const [B, Ci, H, W, Co, kh, kw, pad] of cases as [number, number, number, number, number, number, number, number][]
  ) {
    const x = randomF32(B * Ci * H * W, seed++), w = randomF32(Co * Ci * kh * kw, seed++, 0.3);
    const b = randomF32(Co, seed++);
    const { out: ref, Ho, Wo } = conv2dRef(x, B, Ci, H, W, w, Co, kh, kw, b, pad);
    const out = conv2d({ x, B, Ci, H, W, w, Co, kh, kw, b, pad });
    assert.equal(out.length, B * Co * Ho * Wo);
    assertClose(out, ref, `conv2d B=${B} Ci=${Ci} ${H}x${W} Co=${Co} k=${kh}x${kw} pad=${pad}`);
  }
});

// ---------------------------------------------------------------------------------------------
// resampleMatrix, interpolate

/** PyTorch's cubic convolution kernel, written as in the formula (a = -0.75). */
function cubicRef(x: number): number {
  const a = -0.75, t = Math.abs(x);
  if (t <= 1) return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1;
  if (t < 2) return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a;
  return 0;
}

/** PyTorch bicubic (align_corners=False) as an [nOut, nIn] matrix. */
function bicubicMatrixRef(nIn: number, nOut: number): Float64Array {
  const m = new Float64Array(nOut * nIn);
  for (let o = 0; o < nOut; o++) {
    const src = (o + 0.5) * nIn / nOut - 0.5;
    const i0 = Math.floor(src), t = src - i0;
    const weights = [cubicRef(t + 1), cubicRef(t), cubicRef(1 - t), cubicRef(2 - t)];
    for (let j = 0; j < 4; j++) {
      const i = Math.min(Math.max(i0 - 1 + j, 0), nIn - 1);
      m[o * nIn + i] = m[o * nIn + i]! + weights[j]!;
    }
  }
  return m;
}

/** out[c, o, p] = Σ_i Σ_j my[o, i] mx[p, j] x[c, i, j], written as plain loops. */
function resample2dRef(
  x: Float32Array,
  BC: number,
  h: number,
  w: number,
  size: number,
  my: Float64Array,
  mx: Float64Array,
): Float64Array {
  const out = new Float64Array(BC * size * size);
  for (let c = 0; c < BC; c++) {
    for (let o = 0; o < size; o++) {
      for (let p = 0; p < size; p++) {
        let s = 0;
        for (let i = 0; i < h; i++) {
          for (let j = 0; j < w; j++) s += my[o * h + i]! * mx[p * w + j]! * x[(c * h + i) * w + j]!;
        }
        out[(c * size + o) * size + p] = s;
      }
    }
  }
  return out;
}

/** Half-open input windows of area resampling 16 -> 13. */
const AREA_16_TO_13: readonly [number, number][] = [
  [0, 2],
  [1, 3],
  [2, 4],
  [3, 5],
  [4, 7],
  [6, 8],
  [7, 9],
  [8, 10],
  [9, 12],
  [11, 13],
  [12, 14],
  [13, 15],
  [14, 16],
];

Deno.test("resampleMatrix area 16 -> 13: each row averages exactly its window", () => {
  const m = resampleMatrix("area", 16, 13);
  assert.equal(m.length, 13 * 16);
  AREA_16_TO_13.forEach(([s, e], o) => {
    for (let i = 0; i < 16; i++) {
      assert.equal(m[o * 16 + i], i >= s && i < e ? 1 / (e - s) : 0, `row ${o}, column ${i}`);
    }
  });
});

Deno.test("resampleMatrix area 16 -> 16 and bicubic 16 -> 16 are the identity", () => {
  for (const mode of ["area", "bicubic"] as const) {
    const m = resampleMatrix(mode, 16, 16);
    for (let o = 0; o < 16; o++) {
      for (let i = 0; i < 16; i++) assert.equal(m[o * 16 + i], o === i ? 1 : 0, `${mode} [${o}, ${i}]`);
    }
  }
  const x = randomF32(2 * 16 * 16, 150);
  assert.deepEqual(Array.from(interpolate({ x, BC: 2, h: 16, w: 16, size: 16, mode: "area" })), Array.from(x));
});

Deno.test("interpolate area 16 -> 13 averages the windows in both axes", () => {
  const BC = 3, x = randomF32(BC * 16 * 16, 151);
  const ref = new Float64Array(BC * 13 * 13);
  for (let c = 0; c < BC; c++) {
    AREA_16_TO_13.forEach(([ys, ye], o) => {
      AREA_16_TO_13.forEach(([xs, xe], p) => {
        let s = 0;
        for (let i = ys; i < ye; i++) for (let j = xs; j < xe; j++) s += x[(c * 16 + i) * 16 + j]!;
        ref[(c * 13 + o) * 13 + p] = s / ((ye - ys) * (xe - xs));
      });
    });
  }
  assertClose(interpolate({ x, BC, h: 16, w: 16, size: 13, mode: "area" }), ref, "interpolate area 16->13");
});

Deno.test("resampleMatrix bicubic: rows sum to 1", () => {
  for (const [nIn, nOut] of [[1, 16], [2, 5], [4, 16], [7, 3], [13, 16], [16, 13], [3, 32]]) {
    const m = resampleMatrix("bicubic", nIn!, nOut!);
    for (let o = 0; o < nOut!; o++) {
      let s = 0;
      for (let i = 0; i < nIn!; i++) s += m[o * nIn! + i]!;
      assert.ok(Math.abs(s - 1) < 1e-12, `${nIn} -> ${nOut}: row ${o} sums to ${s}`);
    }
  }
});

Deno.test("resampleMatrix bicubic matches PyTorch's formula (4 -> 16, 6 -> 16, 16 -> 13)", () => {
  for (const [nIn, nOut] of [[4, 16], [6, 16], [16, 13], [2, 7]]) {
    const m = resampleMatrix("bicubic", nIn!, nOut!), ref = bicubicMatrixRef(nIn!, nOut!);
    for (let k = 0; k < ref.length; k++) {
      assert.ok(Math.abs(m[k]! - ref[k]!) < 1e-12, `${nIn} -> ${nOut} entry ${k}: ${m[k]} vs ${ref[k]}`);
    }
  }
  // Hand-checked entry: 4 -> 16, o = 0: src = -0.375, i0 = -1, t = 0.625; taps -2..1 clamp to 0,0,0,1.
  const m = resampleMatrix("bicubic", 4, 16);
  const t = 0.625;
  assert.ok(Math.abs(m[0]! - (cubicRef(t + 1) + cubicRef(t) + cubicRef(1 - t))) < 1e-15);
  assert.ok(Math.abs(m[1]! - cubicRef(2 - t)) < 1e-15);
});

Deno.test("interpolate bicubic 1 -> 16 is constant", () => {
  const x = Float32Array.of(0.75, -3.5);
  const out = interpolate({ x, BC: 2, h: 1, w: 1, size: 16, mode: "bicubic" });
  assertClose(out, [...new Array<number>(256).fill(0.75), ...new Array<number>(256).fill(-3.5)], "bicubic 1->16");
});

Deno.test("interpolate bicubic 4x4 and 4x6 -> 16 against PyTorch's formula", () => {
  let seed = 160;
  for (const [h, w] of [[4, 4], [4, 6]]) {
    const BC = 3, x = randomF32(BC * h! * w!, seed++);
    assertClose(
      interpolate({ x, BC, h: h!, w: w!, size: 16, mode: "bicubic" }),
      resample2dRef(x, BC, h!, w!, 16, bicubicMatrixRef(h!, 16), bicubicMatrixRef(w!, 16)),
      `bicubic ${h}x${w} -> 16`,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// groupNorm

Deno.test("groupNorm: two-pass float64 reference; odd sizes, one and several groups, far from zero", () => {
  // [B, C, S, groups]
  // S = 32: the WebAssembly path (S a multiple of 16), the others the JS loops
  const cases: [number, number, number, number][] = [[2, 6, 7, 3], [1, 4, 5, 1], [2, 6, 1, 6], [1, 8, 33, 2], [
    2,
    4,
    32,
    2,
  ]];
  let seed = 170;
  for (const [B, C, S, groups] of cases) {
    const x = randomF32(B * C * S, seed++), w = randomF32(C, seed++), b = randomF32(C, seed++);
    for (let i = 0; i < S; i++) x[i] = x[i]! + 1e3; // channel 0 of batch 0 far from the rest
    const cg = C / groups, n = cg * S, ref = new Float64Array(x.length);
    for (let bi = 0; bi < B; bi++) {
      for (let g = 0; g < groups; g++) {
        const base = (bi * C + g * cg) * S;
        let mean = 0, v = 0;
        for (let i = 0; i < n; i++) mean += x[base + i]! / n;
        for (let i = 0; i < n; i++) v += (x[base + i]! - mean) ** 2 / n;
        for (let i = 0; i < n; i++) {
          const ch = g * cg + Math.floor(i / S);
          ref[base + i] = ((x[base + i]! - mean) / Math.sqrt(v + 1e-6)) * w[ch]! + b[ch]!;
        }
      }
    }
    assertClose(
      groupNorm({ x, w, b, B, C, S, groups, eps: 1e-6, silu: false }),
      ref,
      `groupNorm B=${B} C=${C} S=${S} groups=${groups}`,
    );
    const silu = ref.map((y) => y / (1 + Math.exp(-y)));
    assertClose(groupNorm({ x, w, b, B, C, S, groups, eps: 1e-6, silu: true }), silu, `groupNorm + silu B=${B} S=${S}`);
  }
});
