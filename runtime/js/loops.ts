/**
 * @file Monomorphic loops behind the elementwise kernels of `kernels.ts`. Each binary operator has
 * its own function, so V8 compiles a loop with the operator inlined (a shared loop calling through
 * a table of closures is megamorphic: one call per element). Results are those of the plain
 * formulas: every element is computed in float64 from float32 inputs and rounded once on store.
 */

/** Activation names with a JS loop here (the `UNARY` table of kernels.ts). */
export type UnaryName = "silu" | "gelu_tanh" | "exp";

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** out = fn(x) with the formulas of `UNARY` (bit-identical results), one loop per function. */
export function unaryJs(x: Float32Array, fn: UnaryName, out: Float32Array): void {
  const n = x.length;
  if (fn === "silu") {
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      out[i] = v / (1 + Math.exp(-v));
    }
  } else if (fn === "gelu_tanh") {
    for (let i = 0; i < n; i++) {
      const v = x[i]!;
      out[i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));
    }
  } else {
    for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]!);
  }
}

/**
 * A binary operator over a 2-D block of `rows` × `inner` outputs written contiguously from o:
 * out[o + r·inner + j] = a[pa + r·ra + j·ai] ∘ b[pb + r·rb + j·bi]. The inner strides are 1 or 0
 * in every compiled call (contiguous, or one operand constant along the row); those get their own
 * loops, any other stride the strided one.
 */
export type BinaryRows = (
  a: Float32Array,
  pa: number,
  ra: number,
  ai: number,
  b: Float32Array,
  pb: number,
  rb: number,
  bi: number,
  out: Float32Array,
  o: number,
  rows: number,
  inner: number,
) => void;

function addRows(
  a: Float32Array,
  pa: number,
  ra: number,
  ai: number,
  b: Float32Array,
  pb: number,
  rb: number,
  bi: number,
  out: Float32Array,
  o: number,
  rows: number,
  inner: number,
): void {
  for (let r = 0; r < rows; r++, pa += ra, pb += rb, o += inner) {
    if (ai === 1 && bi === 1) { for (let j = 0; j < inner; j++) out[o + j] = a[pa + j]! + b[pb + j]!; }
    else if (ai === 1 && bi === 0) {
      const y = b[pb]!;
      for (let j = 0; j < inner; j++) out[o + j] = a[pa + j]! + y;
    } else if (ai === 0 && bi === 1) {
      const v = a[pa]!;
      for (let j = 0; j < inner; j++) out[o + j] = v + b[pb + j]!;
    } else for (let j = 0; j < inner; j++) out[o + j] = a[pa + j * ai]! + b[pb + j * bi]!;
  }
}

function subRows(
  a: Float32Array,
  pa: number,
  ra: number,
  ai: number,
  b: Float32Array,
  pb: number,
  rb: number,
  bi: number,
  out: Float32Array,
  o: number,
  rows: number,
  inner: number,
): void {
  for (let r = 0; r < rows; r++, pa += ra, pb += rb, o += inner) {
    if (ai === 1 && bi === 1) { for (let j = 0; j < inner; j++) out[o + j] = a[pa + j]! - b[pb + j]!; }
    else if (ai === 1 && bi === 0) {
      const y = b[pb]!;
      for (let j = 0; j < inner; j++) out[o + j] = a[pa + j]! - y;
    } else if (ai === 0 && bi === 1) {
      const v = a[pa]!;
      for (let j = 0; j < inner; j++) out[o + j] = v - b[pb + j]!;
    } else for (let j = 0; j < inner; j++) out[o + j] = a[pa + j * ai]! - b[pb + j * bi]!;
  }
}

function mulRows(
  a: Float32Array,
  pa: number,
  ra: number,
  ai: number,
  b: Float32Array,
  pb: number,
  rb: number,
  bi: number,
  out: Float32Array,
  o: number,
  rows: number,
  inner: number,
): void {
  for (let r = 0; r < rows; r++, pa += ra, pb += rb, o += inner) {
    if (ai === 1 && bi === 1) { for (let j = 0; j < inner; j++) out[o + j] = a[pa + j]! * b[pb + j]!; }
    else if (ai === 1 && bi === 0) {
      const y = b[pb]!;
      for (let j = 0; j < inner; j++) out[o + j] = a[pa + j]! * y;
    } else if (ai === 0 && bi === 1) {
      const v = a[pa]!;
      for (let j = 0; j < inner; j++) out[o + j] = v * b[pb + j]!;
    } else for (let j = 0; j < inner; j++) out[o + j] = a[pa + j * ai]! * b[pb + j * bi]!;
  }
}

/** The block loop of each `BINARY` operator. */
export const BINARY_ROWS: { readonly add: BinaryRows; readonly sub: BinaryRows; readonly mul: BinaryRows } = {
  add: addRows,
  sub: subRows,
  mul: mulRows,
};

/**
 * out = a ∘ b over [0, n) of contiguous operands: loops indexed from 0, which V8 compiles to about
 * twice the speed of the offset loops of `BINARY_ROWS` (the decoder's residual adds: 10⁷ floats).
 */
export const BINARY_FLAT: {
  readonly [F in keyof typeof BINARY_ROWS]: (a: Float32Array, b: Float32Array, out: Float32Array, n: number) => void;
} = {
  add: (a, b, out, n) => {
    for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
  },
  sub: (a, b, out, n) => {
    for (let i = 0; i < n; i++) out[i] = a[i]! - b[i]!;
  },
  mul: (a, b, out, n) => {
    for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!;
  },
};

/** An output shape with the strides of both inputs over it. */
export interface Strided {
  readonly shape: number[];
  readonly as: number[];
  readonly bs: number[];
}

/**
 * The same iteration with fewer axes: size-1 axes dropped, and each axis merged into the one
 * before it when both inputs step across the pair as across one axis (outer stride = inner stride
 * × inner size; broadcast axes of stride 0 merge with each other). A contiguous operation becomes
 * one axis; a [B, C, H, W] ∘ [1, C, 1, 1] becomes [B·C, H·W] with strides (H·W, 1) and (1, 0).
 */
export function collapseStrides(
  shape: readonly number[],
  as: readonly number[],
  bs: readonly number[],
): Strided {
  const [c, [a2, b2]] = collapseAll(shape, [as, bs]);
  return { shape: c, as: a2!, bs: b2! };
}

/** `collapseStrides` for any number of inputs: the collapsed shape and each input's strides over it. */
export function collapseAll(shape: readonly number[], strides: readonly (readonly number[])[]): [number[], number[][]] {
  const out: number[] = [], outS = strides.map(() => [] as number[]);
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d]!, k = out.length - 1;
    if (n === 1) continue;
    if (k >= 0 && strides.every((s, i) => outS[i]![k] === s[d]! * n)) {
      out[k]! *= n;
      strides.forEach((s, i) => outS[i]![k] = s[d]!);
    } else out.push(n), strides.forEach((s, i) => outS[i]!.push(s[d]!));
  }
  return [out, outS];
}

/**
 * Side of the square tiles of `transpose`: a tile reads TILE runs of TILE contiguous values and
 * fills TILE output runs, whose cache lines stay in L1 meanwhile. 64 measured best on [160, 65536]
 * -> [65536, 160] (a decoder map to channels-last; its input rows are 256 KiB apart).
 */
const TILE = 64;

/** dst[d + c·R + r] = src[s + r·C + c]: [R, C] -> [C, R] by TILE × TILE tiles. */
function transpose(src: Int32Array, s: number, R: number, C: number, dst: Int32Array, d: number): void {
  for (let r0 = 0; r0 < R; r0 += TILE) {
    const r1 = Math.min(R, r0 + TILE);
    for (let c0 = 0; c0 < C; c0 += TILE) {
      const c1 = Math.min(C, c0 + TILE);
      for (let r = r0; r < r1; r++) {
        const from = s + r * C, to = d + r;
        for (let c = c0; c < c1; c++) dst[to + c * R] = src[from + c]!;
      }
    }
  }
}

/**
 * The same permutation with fewer axes: input axes of size 1 dropped, and input axes that stay
 * adjacent and in order in the output merged. [B, C, H, W] by (0, 2, 3, 1) becomes [B, C, H·W] by
 * (0, 2, 1); [B, T, H, D] by (0, 2, 1, 3) stays as it is.
 */
export function collapsePermutation(
  shape: readonly number[],
  perm: readonly number[],
): { shape: number[]; perm: number[] } {
  // runs of output axes whose input axes are consecutive (size-1 axes skipped)
  const runs: number[][] = [];
  for (const p of perm) {
    if (shape[p] === 1) continue;
    const last = runs.at(-1);
    if (last && nextKept(shape, last.at(-1)!) === p) last.push(p);
    else runs.push([p]);
  }
  // input order of the runs gives the collapsed input axes
  const order = runs.map((_, i) => i).sort((i, j) => runs[i]![0]! - runs[j]![0]!);
  const axisOf = new Array<number>(runs.length);
  order.forEach((run, axis) => axisOf[run] = axis);
  return {
    shape: order.map((run) => runs[run]!.reduce((n, p) => n * shape[p]!, 1)),
    perm: runs.map((_, run) => axisOf[run]!),
  };
}

/** The first input axis after `p` whose size is not 1 (shape.length when none). */
function nextKept(shape: readonly number[], p: number): number {
  let q = p + 1;
  while (q < shape.length && shape[q] === 1) q++;
  return q;
}

/**
 * dst = src permuted (out.shape[i] = shape[perm[i]]), both viewed as i32 so that elements are
 * copied bit for bit. After collapsing: a copy; a (batched) 2-D transpose by tiles; a (batched)
 * swap of the middle axes moving runs of the last one ([B, T, H, D] -> [B, H, T, D], the attention
 * head split and merge); otherwise the general walk, copying runs when the last axis stays last.
 */
export function permuteInt32(
  src: Int32Array,
  dst: Int32Array,
  shape: readonly number[],
  perm: readonly number[],
): void {
  const c = collapsePermutation(shape, perm), r = c.shape.length, s = c.shape, p = c.perm;
  if (r <= 1) return dst.set(src);
  if (r === 2) return transpose(src, 0, s[0]!, s[1]!, dst, 0);
  if (r === 3 && p[0] === 0 && p[1] === 2) {
    const R = s[1]!, C = s[2]!;
    for (let i = 0; i < s[0]!; i++) transpose(src, i * R * C, R, C, dst, i * R * C);
    return;
  }
  if ((r === 3 && p[0] === 1 && p[2] === 2) || (r === 4 && p[0] === 0 && p[1] === 2 && p[3] === 3)) {
    const [A, R, C, D] = r === 3 ? [1, s[0]!, s[1]!, s[2]!] : s as [number, number, number, number];
    let o = 0;
    for (let a = 0; a < A; a++) {
      for (let c = 0; c < C; c++) {
        for (let i = 0, from = (a * R * C + c) * D; i < R; i++, from += C * D, o += D) {
          for (let j = 0; j < D; j++) dst[o + j] = src[from + j]!;
        }
      }
    }
    return;
  }
  const strides = new Array<number>(r);
  for (let d = r - 1, st = 1; d >= 0; d--) strides[d] = st, st *= s[d]!;
  const outShape = p.map((q) => s[q]!), inStride = p.map((q) => strides[q]!);
  const inner = outShape[r - 1]!, innerStride = inStride[r - 1]!;
  const idx = new Array<number>(r - 1).fill(0);
  for (let o = 0; o < src.length; o += inner) {
    let from = 0;
    for (let d = 0; d < r - 1; d++) from += idx[d]! * inStride[d]!;
    if (innerStride === 1) { for (let j = 0; j < inner; j++) dst[o + j] = src[from + j]!; }
    else for (let j = 0; j < inner; j++) dst[o + j] = src[from + j * innerStride]!;
    for (let d = r - 2; d >= 0; d--) {
      if (++idx[d]! < outShape[d]!) break;
      idx[d] = 0;
    }
  }
}

/**
 * GroupNorm's per-channel affine from per-channel statistics: `stats` [B·C, 2] holds each channel's
 * mean and Σ(x − mean)² over its S values; a group's Σ(x − mean)² is Σ_c M2_c + S·Σ_c (mean_c −
 * mean)² (the exact parallel-variance identity). Writes scale = w·inv and shift = b − mean·scale
 * per channel into `affine` [B·C, 2], in float64.
 */
export function groupAffine(
  stats: Float64Array,
  w: Float32Array,
  b: Float32Array,
  C: number,
  groups: number,
  S: number,
  eps: number,
  affine: Float64Array,
): void {
  const cg = C / groups;
  for (let g0 = 0; g0 < stats.length / 2; g0 += cg) {
    let total = 0, m2 = 0;
    for (let c = g0; c < g0 + cg; c++) total += stats[2 * c]!, m2 += stats[2 * c + 1]!;
    const mean = total / cg;
    for (let c = g0; c < g0 + cg; c++) m2 += S * (stats[2 * c]! - mean) * (stats[2 * c]! - mean);
    const inv = 1 / Math.sqrt(m2 / (cg * S) + eps);
    for (let c = g0; c < g0 + cg; c++) {
      const scale = w[c % C]! * inv;
      affine[2 * c] = scale, affine[2 * c + 1] = b[c % C]! - mean * scale;
    }
  }
}

/**
 * Σ (x[i] − center)² over [from, end) in float64 (center 0: Σ x²), or Σ x[i] when `center` is
 * undefined, as eight partial sums s_k over the elements at index from + k mod 8, combined as
 * ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)): eight independent add chains, and the order of
 * the WebAssembly row kernels (wasm/rows_module.ts), so both give the same bits.
 */
export function sum8(x: Float32Array, from: number, end: number, center?: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0, i = from;
  if (center === undefined) {
    for (; i + 7 < end; i += 8) {
      s0 += x[i]!, s1 += x[i + 1]!, s2 += x[i + 2]!, s3 += x[i + 3]!;
      s4 += x[i + 4]!, s5 += x[i + 5]!, s6 += x[i + 6]!, s7 += x[i + 7]!;
    }
    const t = (k: number) => i + k < end ? x[i + k]! : 0;
    s0 += t(0), s1 += t(1), s2 += t(2), s3 += t(3), s4 += t(4), s5 += t(5), s6 += t(6);
  } else {
    for (; i + 7 < end; i += 8) {
      const d0 = x[i]! - center, d1 = x[i + 1]! - center, d2 = x[i + 2]! - center, d3 = x[i + 3]! - center;
      const d4 = x[i + 4]! - center, d5 = x[i + 5]! - center, d6 = x[i + 6]! - center, d7 = x[i + 7]! - center;
      s0 += d0 * d0, s1 += d1 * d1, s2 += d2 * d2, s3 += d3 * d3;
      s4 += d4 * d4, s5 += d5 * d5, s6 += d6 * d6, s7 += d7 * d7;
    }
    const t = (k: number) => {
      const d = i + k < end ? x[i + k]! - center : 0;
      return d * d;
    };
    s0 += t(0), s1 += t(1), s2 += t(2), s3 += t(3), s4 += t(4), s5 += t(5), s6 += t(6);
  }
  return ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7));
}
