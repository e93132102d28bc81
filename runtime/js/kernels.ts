/**
 * @file Float32 reference kernels of the JS target. Generated model modules call these with static sizes,
 * each with one record of named arguments (the kernel contract, `../kernels.ts`: `linear({ x, M, K, w, N, b })`).
 *
 * Layouts are row-major. Accumulation happens in float64 (JS numbers); results are stored as float32.
 * The exception is `gemmNT` (and so `linear` and `conv2d`): products of at least `WASM_MIN_MACS`
 * multiply-adds run in the WebAssembly SIMD128 kernel of `./wasm/gemm.ts` when the host supports it,
 * which accumulates in float32 (four partial sums per output per K block of 512); the JS kernel
 * below stays the fallback, and `setGemmBackend("js")` forces it. With the WASM backend in use,
 * large `attention` calls run fused in WebAssembly too (float32 logits and sums). Sizes and strides are computed by the compiler; kernels only check what depends on
 * run-time data (token indices).
 */
import { attentionWasm, type QueryGroup } from "./wasm/attention.ts";
import { allocF32 } from "./pool.ts";
import type { Implements, KernelArgs, KernelName, Kernels, KeyRanges, LinearAct } from "../kernels.ts";
import { resampleMatrix } from "../host_constants.ts";

export type { KeyRanges } from "../kernels.ts";
// the generated code of every target calls these as K.scaleKeyRanges / K.fullKeyRanges (hoisted constants)
export { fullKeyRanges, resampleMatrix, scaleKeyRanges } from "../host_constants.ts";
import { conv2dWasm } from "./wasm/conv.ts";
import { gemmNTWasm, WASM_MIN_MACS } from "./wasm/gemm.ts";
import { groupNormWasm } from "./wasm/norm.ts";
import {
  BINARY_FLAT,
  BINARY_ROWS,
  collapseAll,
  collapseStrides,
  groupAffine,
  permuteInt32,
  sum8,
  unaryJs,
} from "./loops.ts";
import { addMulRowsWasm, addMulWasm, headsWasm, layerNormWasm, UNARY_WASM_MIN, unaryWasm } from "./wasm/elementwise.ts";

export { release } from "./pool.ts";
export { type GemmBackend, gemmBackend, gemmThreads, setGemmBackend, setGemmThreads } from "./wasm/gemm.ts";

/** The argument record of kernel `K` on this target (`../kernels.ts`). */
type Args<K extends KernelName> = KernelArgs<K, Float32Array, Int32Array>;

/**
 * The kernel contract holds for the JS target, this module and `lowrank.ts` (`K` and `LR` of generated
 * code): a kernel missing, or needing a field the contract does not give, fails type checking here.
 */
export type JsKernels = Implements<
  typeof import("./kernels.ts") & typeof import("./lowrank.ts"),
  Kernels<Float32Array, Int32Array>
>;

/** Error raised by a kernel on bad run-time data (e.g. a token index out of range). */
export class KernelError extends Error {
  override name = "KernelError";
}

/** A NaN or infinity found by `--check-numerics`, naming the node, its spec span and the entry. */
export class NumericsError extends Error {
  override name = "NumericsError";
}

/** Throws NumericsError at the first non-finite element (`what` names the node and entry). */
export function checkFinite({ x, what }: Args<"checkFinite">): void {
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!)) {
      const scale = /^step_(\d+)/.exec(what)?.[1];
      const at = scale !== undefined ? ` (generation scale ${scale})` : "";
      throw new NumericsError(`${what}${at} produced ${x[i]} at flat index ${i} of ${x.length}`);
    }
  }
}

/** table [N, C], idx [n] -> [n, C]. */
export function gather({ table, N, C, idx, what }: Args<"gather">): Float32Array {
  const out = allocF32(idx.length * C, { zeroed: false });
  for (let i = 0; i < idx.length; i++) {
    const r = idx[i]!;
    if (!(r >= 0 && r < N)) throw new KernelError(`${what}: index ${r} at position ${i} is out of range [0, ${N})`);
    out.set(table.subarray(r * C, r * C + C), i * C);
  }
  return out;
}

/** x [M, K] @ w[N, K]ᵀ (+ b [N]) -> [M, N]. */
export function linear({ x, M, K, w, N, b, act }: Args<"linear">): Float32Array {
  const out = allocF32(M * N, { zeroed: false });
  gemmNT(x, M, K, w, N, b, out, act);
  return out;
}

/**
 * out[M, N] = a[M, K] @ w[N, K]ᵀ (+ bias): both operands are contiguous along K. Large products go
 * to the WebAssembly SIMD kernel (split across worker threads when large enough); the rest, and all
 * of them where WebAssembly SIMD is unavailable or `setGemmBackend("js")` is set, to `gemmNTJs`.
 * `act` is applied to the finished outputs: in the broadcast WASM kernel's epilogue when that ran,
 * else as `unary` would (the same bits either way).
 */
export function gemmNT(
  a: Float32Array,
  M: number,
  K: number,
  w: Float32Array,
  N: number,
  bias: Float32Array | null,
  out: Float32Array,
  act: LinearAct = "none",
): void {
  const done = M * N * K >= WASM_MIN_MACS ? gemmNTWasm(a, M, K, w, N, bias, out, act) : false;
  if (!done) gemmNTJs(a, M, K, w, N, bias, out);
  if (act !== "none" && done !== "fused") activate(out, act, out);
}

/**
 * The JS GEMM, out[M, N] = a[M, K] @ w[N, K]ᵀ (+ bias), accumulating in float64. Tiles of 4 rows ×
 * 4 columns keep 16 accumulators in registers, so each loaded value feeds 4 multiply-adds.
 */
export function gemmNTJs(
  a: Float32Array,
  M: number,
  K: number,
  w: Float32Array,
  N: number,
  bias: Float32Array | null,
  out: Float32Array,
): void {
  let m = 0;
  for (; m + 4 <= M; m += 4) {
    const a0 = m * K, a1 = a0 + K, a2 = a1 + K, a3 = a2 + K;
    let n = 0;
    for (; n + 4 <= N; n += 4) {
      const w0 = n * K, w1 = w0 + K, w2 = w1 + K, w3 = w2 + K;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      let s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
      for (let k = 0; k < K; k++) {
        const x0 = a[a0 + k]!, x1 = a[a1 + k]!, x2 = a[a2 + k]!, x3 = a[a3 + k]!;
        const v0 = w[w0 + k]!, v1 = w[w1 + k]!, v2 = w[w2 + k]!, v3 = w[w3 + k]!;
        s00 += x0 * v0, s01 += x0 * v1, s02 += x0 * v2, s03 += x0 * v3;
        s10 += x1 * v0, s11 += x1 * v1, s12 += x1 * v2, s13 += x1 * v3;
        s20 += x2 * v0, s21 += x2 * v1, s22 += x2 * v2, s23 += x2 * v3;
        s30 += x3 * v0, s31 += x3 * v1, s32 += x3 * v2, s33 += x3 * v3;
      }
      const b0 = bias ? bias[n]! : 0,
        b1 = bias ? bias[n + 1]! : 0,
        b2 = bias ? bias[n + 2]! : 0,
        b3 = bias ? bias[n + 3]! : 0;
      let o = m * N + n;
      out[o] = s00 + b0, out[o + 1] = s01 + b1, out[o + 2] = s02 + b2, out[o + 3] = s03 + b3;
      o += N;
      out[o] = s10 + b0, out[o + 1] = s11 + b1, out[o + 2] = s12 + b2, out[o + 3] = s13 + b3;
      o += N;
      out[o] = s20 + b0, out[o + 1] = s21 + b1, out[o + 2] = s22 + b2, out[o + 3] = s23 + b3;
      o += N;
      out[o] = s30 + b0, out[o + 1] = s31 + b1, out[o + 2] = s32 + b2, out[o + 3] = s33 + b3;
    }
    for (; n < N; n++) {
      for (let r = 0; r < 4; r++) out[(m + r) * N + n] = dot(a, (m + r) * K, w, n * K, K) + (bias ? bias[n]! : 0);
    }
  }
  for (; m < M; m++) {
    for (let n = 0; n < N; n++) out[m * N + n] = dot(a, m * K, w, n * K, K) + (bias ? bias[n]! : 0);
  }
}

function dot(a: Float32Array, ai: number, b: Float32Array, bi: number, K: number): number {
  let s = 0;
  for (let k = 0; k < K; k++) s += a[ai + k]! * b[bi + k]!;
  return s;
}

/**
 * LayerNorm without affine over rows of C. The variance is the mean of (x − mean)² (a second pass
 * over the row, which is in L1), each sum in float64 as `sum8` takes it (eight independent add
 * chains). With s and b, row r is modulated by row ⌊r / T⌋ of each: h + h·s + b, with h, h·s and
 * h + h·s rounded to float32 as the separate kernels store them (the same bits, one pass instead of
 * four). Rows of a multiple of 8 floats run in WebAssembly (`layerNormWasm`), with the same bits.
 */
export function layerNorm({ x, C, eps, s, b, T }: Args<"layerNorm">): Float32Array {
  const out = allocF32(x.length, { zeroed: false });
  if (layerNormWasm(x, C, eps, s, b, T, out)) return out;
  for (let r = 0, row = 0; r < x.length; r += C, row++) {
    const end = r + C, mean = sum8(x, r, end) / C;
    const inv = 1 / Math.sqrt(sum8(x, r, end, mean) / C + eps);
    if (!s || !b) {
      for (let i = r; i < end; i++) out[i] = (x[i]! - mean) * inv;
      continue;
    }
    for (let i = r, c = Math.floor(row / T) * C; i < end; i++, c++) {
      const h = Math.fround((x[i]! - mean) * inv);
      out[i] = Math.fround(h + Math.fround(h * s[c]!)) + b[c]!;
    }
  }
  return out;
}

/** x / max(‖x‖₂, eps) over rows of D (the sum of squares in float64 as `sum8` takes it). */
export function l2Normalize({ x, D, eps }: Args<"l2Normalize">): Float32Array {
  const out = allocF32(x.length, { zeroed: false });
  for (let r = 0; r < x.length; r += D) {
    const inv = invNorm(x, r, r + D, eps);
    for (let i = r; i < r + D; i++) out[i] = x[i]! * inv;
  }
  return out;
}

/** 1 / max(‖x[from, end)‖₂, eps), the sum of squares in float64 as `sum8` takes it. */
function invNorm(x: Float32Array, from: number, end: number, eps: number): number {
  return 1 / Math.max(Math.sqrt(sum8(x, from, end, 0)), eps);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** Elementwise functions of `unary`. */
export const UNARY = {
  silu: (v: number) => v / (1 + Math.exp(-v)),
  gelu_tanh: (v: number) => 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v))),
  exp: (v: number) => Math.exp(v),
} as const;

/**
 * fn(x) elementwise. Arrays of at least `UNARY_WASM_MIN` floats run in WebAssembly SIMD when the
 * host has it (`./wasm/elementwise.ts`: these formulas in float32 around a vectorised exp; relative
 * error ≤ 1.37 ulp for exp, ≤ 2 + 1.37 ulp for silu, plus about 5|z| ulp for gelu_tanh at x < 0
 * from rounding its argument z; ±∞ and NaN as here); the others use the formulas in float64.
 */
export function unary({ x, fn }: Args<"unary">): Float32Array {
  const out = allocF32(x.length, { zeroed: false });
  activate(x, fn, out);
  return out;
}

/** out = fn(x) as `unary` computes it (out may be x). */
function activate(x: Float32Array, fn: keyof typeof UNARY, out: Float32Array): void {
  if (!(x.length >= UNARY_WASM_MIN && unaryWasm(x, fn, out))) unaryJs(x, fn, out);
}

/** Elementwise functions of `scalar`. */
export const SCALAR = {
  mul: (v: number, c: number) => v * c,
  add: (v: number, c: number) => v + c,
  min: (v: number, c: number) => Math.min(v, c),
  max: (v: number, c: number) => Math.max(v, c),
} as const;

/** fn(x, c) elementwise: one loop per function, results as the `SCALAR` formulas. */
export function scalar({ x, fn, value: c }: Args<"scalar">): Float32Array {
  const n = x.length, out = allocF32(n, { zeroed: false });
  if (fn === "mul") { for (let i = 0; i < n; i++) out[i] = x[i]! * c; }
  else if (fn === "add") { for (let i = 0; i < n; i++) out[i] = x[i]! + c; }
  else if (fn === "min") { for (let i = 0; i < n; i++) out[i] = Math.min(x[i]!, c); }
  else for (let i = 0; i < n; i++) out[i] = Math.max(x[i]!, c);
  return out;
}

/** Elementwise functions of `binary`. */
export const BINARY = {
  add: (a: number, b: number) => a + b,
  sub: (a: number, b: number) => a - b,
  mul: (a: number, b: number) => a * b,
} as const;

/**
 * fn(a, b) with broadcasting. `shape` is the output shape; `aStrides`/`bStrides` are the inputs' strides over it
 * (0 on broadcast axes), as computed by the compiler. Axes are collapsed first (size-1 axes
 * dropped, axes merged where both inputs are contiguous across them), so a same-shape operation is
 * one block, a per-row scalar ([R, C] ∘ [R, 1], channel-wise [B, C, H, W] ∘ [1, C, 1, 1]) or a row
 * vector repeated over rows ([R, C] ∘ [C]) one 2-D block; any axes left before the last two are
 * walked. Blocks run in a loop per operator (`./loops.ts`), results as the `BINARY` formulas.
 */
export function binary({ a, b, fn, shape, aStrides: as, bStrides: bs }: Args<"binary">): Float32Array {
  const n = shape.reduce((p, d) => p * d, 1);
  const out = allocF32(n, { zeroed: false });
  if (n === 0) return out;
  const c = collapseStrides(shape, as, bs), r = c.shape.length, rows = BINARY_ROWS[fn];
  const inner = r > 0 ? c.shape[r - 1]! : 1, ai = r > 0 ? c.as[r - 1]! : 0, bi = r > 0 ? c.bs[r - 1]! : 0;
  const R = r > 1 ? c.shape[r - 2]! : 1, ra = r > 1 ? c.as[r - 2]! : 0, rb = r > 1 ? c.bs[r - 2]! : 0;
  if (r === 1 && ai === 1 && bi === 1) return BINARY_FLAT[fn](a, b, out, n), out;
  const walk = r - 2, idx = new Array<number>(Math.max(0, walk)).fill(0);
  for (let o = 0; o < n; o += R * inner) {
    let pa = 0, pb = 0;
    for (let d = 0; d < walk; d++) pa += idx[d]! * c.as[d]!, pb += idx[d]! * c.bs[d]!;
    rows(a, pa, ra, ai, b, pb, rb, bi, out, o, R, inner);
    for (let d = walk - 1; d >= 0; d--) {
      if (++idx[d]! < c.shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** An output like x (Float32: from the pool, stale; Int32: fresh) that the caller writes in full. */
function alloc<T extends Float32Array | Int32Array>(x: T, n: number): T {
  return (x instanceof Float32Array ? allocF32(n, { zeroed: false }) : new Int32Array(n)) as T;
}

/**
 * a + b·c with broadcasting, in one pass with the bits of `binary` mul then add (the product of
 * two float32 values is exact in float64 and rounded once by `Math.fround`; the sum rounds once on
 * store). Axes are collapsed as in `binary`; the last one is a loop (contiguous operands and a b
 * repeated along it have their own), the axes before it are walked.
 */
export function addMul({ a, b, c, shape, aStrides, bStrides, cStrides }: Args<"addMul">): Float32Array {
  const n = shape.reduce((p, d) => p * d, 1);
  const out = allocF32(n, { zeroed: false });
  if (n === 0) return out;
  const [s, [as, bs, cs]] = collapseAll(shape, [aStrides, bStrides, cStrides]);
  const r = s.length, inner = r > 0 ? s[r - 1]! : 1;
  const ai = r > 0 ? as![r - 1]! : 0, bi = r > 0 ? bs![r - 1]! : 0, ci = r > 0 ? cs![r - 1]! : 0;
  const idx = new Array<number>(Math.max(0, r - 1)).fill(0);
  // rows of whole vectors go to WebAssembly (the same bits), given each row's offsets
  const wasm = ai === 1 && bi === 1 && ci === 1 && inner >= ROW_WASM_MIN && addMulRowsWasm(inner);
  const offsets = wasm ? new Int32Array(3 * (n / inner)) : null;
  for (let o = 0; o < n; o += inner) {
    let pa = 0, pb = 0, pc = 0;
    for (let d = 0; d < r - 1; d++) pa += idx[d]! * as![d]!, pb += idx[d]! * bs![d]!, pc += idx[d]! * cs![d]!;
    if (offsets) offsets[3 * (o / inner)] = pa, offsets[3 * (o / inner) + 1] = pb, offsets[3 * (o / inner) + 2] = pc;
    else if (ai === 1 && bi === 1 && ci === 1) {
      for (let j = 0; j < inner; j++) out[o + j] = a[pa + j]! + Math.fround(b[pb + j]! * c[pc + j]!);
    } else if (ai === 1 && bi === 0 && ci === 1) {
      const y = b[pb]!;
      for (let j = 0; j < inner; j++) out[o + j] = a[pa + j]! + Math.fround(y * c[pc + j]!);
    } else {
      for (let j = 0; j < inner; j++) {
        out[o + j] = a[pa + j * ai]! + Math.fround(b[pb + j * bi]! * c[pc + j * ci]!);
      }
    }
    for (let d = r - 2; d >= 0; d--) {
      if (++idx[d]! < s[d]!) break;
      idx[d] = 0;
    }
  }
  if (offsets) addMulWasm(a, b, c, offsets, inner, out);
  return out;
}

/** Rows at least this long go to the WebAssembly row kernels (shorter ones: per-row copies cost more). */
const ROW_WASM_MIN = 64;

/**
 * Heads of a packed projection in one pass (see the contract): each row of D read where it lies in
 * x, its sum of squares as `l2Normalize` takes it, x·inv rounded to float32, then times τ_h and
 * rounded again, as the separate kernels store them. With eps and D a multiple of 8 it runs in
 * WebAssembly (`headsWasm`), with the same bits.
 */
export function heads({ x, rows, T, W, start, H, D, eps, tau }: Args<"heads">): Float32Array {
  const out = allocF32(rows * H * D, { zeroed: false });
  if (eps !== null && headsWasm(x, rows, T, W, start, H, D, eps, tau, out)) return out;
  for (let r = 0; r < rows; r++) {
    const b = Math.floor(r / T), t = r - b * T;
    for (let h = 0; h < H; h++) {
      const from = r * W + start + h * D, to = ((b * H + h) * T + t) * D, end = from + D;
      if (eps === null) {
        const g = tau ? tau[h]! : 1;
        if (tau) { for (let i = from, o = to; i < end; i++, o++) out[o] = x[i]! * g; }
        else out.set(x.subarray(from, end), to);
        continue;
      }
      const inv = invNorm(x, from, end, eps);
      if (tau) {
        const g = tau[h]!;
        for (let i = from, o = to; i < end; i++, o++) out[o] = Math.fround(x[i]! * inv) * g;
      } else for (let i = from, o = to; i < end; i++, o++) out[o] = x[i]! * inv;
    }
  }
  return out;
}

/**
 * Transpose: out.shape[i] = shape[perm[i]]. Axes are collapsed first (size-1 axes dropped, axes
 * that stay adjacent merged); 2-D and batched 2-D transposes go by cache-sized tiles, the rest copy
 * runs along the last axis (`./loops.ts`). Elements are copied as i32, bit for bit.
 */
export function permute<T extends Float32Array | Int32Array>({ x, shape, perm }: Args<"permute"> & { x: T }): T {
  const out = alloc(x, x.length);
  const src = new Int32Array(x.buffer, x.byteOffset, x.length);
  permuteInt32(src, new Int32Array(out.buffer, out.byteOffset, out.length), shape, perm);
  return out;
}

/** [outer, size, inner] -> [outer, end - start, inner]. */
export function slice<T extends Float32Array | Int32Array>(
  { x, outer, size, inner, start, end }: Args<"slice"> & { x: T },
): T {
  const w = (end - start) * inner;
  const out = alloc(x, outer * w);
  for (let o = 0; o < outer; o++) out.set(x.subarray((o * size + start) * inner, (o * size + end) * inner), o * w);
  return out;
}

/** Joins [outer, size_i, inner] tensors along the middle axis. */
export function concat({ xs, outer, sizes, inner }: Args<"concat">): Float32Array {
  const total = sizes.reduce((a, s) => a + s, 0);
  const out = allocF32(outer * total * inner, { zeroed: false });
  for (let o = 0; o < outer; o++) {
    let at = o * total * inner;
    xs.forEach((x, i) => {
      const w = sizes[i]! * inner;
      out.set(x.subarray(o * w, o * w + w), at);
      at += w;
    });
  }
  return out;
}

/** Scale index of every token of a schedule. */
export function levelIds({ schedule }: Args<"levelIds">): Int32Array {
  const out: number[] = [];
  schedule.forEach((n, s) => out.push(...new Array<number>(n * n).fill(s)));
  return Int32Array.from(out);
}

/**
 * Calls with at least this many multiply-adds (all heads) go to the WebAssembly attention: the JS
 * row form takes about a nanosecond per multiply-add, the copies into the module's memory much less.
 */
export const ATTENTION_WASM_MIN_MACS = 1 << 14;

/**
 * q [BH, Tq, D], k [BH, Tk, D], v [BH, Tk, Dv] -> [BH, Tq, Dv]: softmax(scale·q kᵀ) v over each
 * query's key range. Consecutive queries with the same range form a group. Large calls run fused
 * in WebAssembly when the WASM backend is in use (`./wasm/attention.ts`: float32 logits and sums,
 * online softmax over key blocks, split across the worker threads); the others, and all calls
 * with the JS backend, take the row form with a running max (one pass over keys, no [Tq, Tk]
 * matrix, float64 accumulation).
 */
export function attention({ q, k, v, BH, Tq, Tk, D, Dv, scale, ranges }: Args<"attention">): Float32Array {
  const out = allocF32(BH * Tq * Dv);
  const groups: QueryGroup[] = [];
  let macs = 0;
  for (let i0 = 0, i1 = 0; i0 < Tq; i0 = i1) {
    const lo = ranges.lo[i0]!, hi = ranges.hi[i0]!;
    for (i1 = i0 + 1; i1 < Tq && ranges.lo[i1] === lo && ranges.hi[i1] === hi; i1++);
    groups.push({ i0, i1, lo, hi });
    macs += (i1 - i0) * Math.max(0, hi - lo) * (D + Dv);
  }
  if (macs * BH >= ATTENTION_WASM_MIN_MACS && attentionWasm(q, k, v, BH, Tq, Tk, D, Dv, scale, groups, out)) return out;
  for (const { i0, i1 } of groups) attentionRows(q, k, v, BH, Tq, Tk, D, Dv, scale, ranges, i0, i1, out);
  return out;
}

/** Row form of `attention` for queries [i0, i1) of every head. */
function attentionRows(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  BH: number,
  Tq: number,
  Tk: number,
  D: number,
  Dv: number,
  scale: number,
  ranges: KeyRanges,
  i0: number,
  i1: number,
  out: Float32Array,
): void {
  const acc = new Float64Array(Dv);
  for (let bh = 0; bh < BH; bh++) {
    const kb = bh * Tk * D, vb = bh * Tk * Dv;
    for (let i = i0; i < i1; i++) {
      const qi = (bh * Tq + i) * D;
      let max = -Infinity, sum = 0;
      acc.fill(0);
      for (let j = ranges.lo[i]!; j < ranges.hi[i]!; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[qi + d]! * k[kb + j * D + d]!;
        s *= scale;
        if (s > max) {
          const c = Math.exp(max - s);
          sum *= c;
          for (let d = 0; d < Dv; d++) acc[d]! *= c;
          max = s;
        }
        const p = Math.exp(s - max);
        sum += p;
        for (let d = 0; d < Dv; d++) acc[d]! += p * v[vb + j * Dv + d]!;
      }
      const o = (bh * Tq + i) * Dv;
      for (let d = 0; d < Dv; d++) out[o + d] = acc[d]! / sum;
    }
  }
}

/**
 * x [B, Ci, H, W] * w [Co, Ci, kh, kw] + b [Co], stride 1, zero padding `pad`. Lowered to GEMM on
 * chunks of output pixels: col [P, Ci·kh·kw] (zeros where the window leaves the image) times wᵀ,
 * then transposed into the channel-major output.
 */
export function conv2d({ x, B, Ci, H, W, w, Co, kh, kw, b, pad }: Args<"conv2d">): Float32Array {
  const Ho = H + 2 * pad - kh + 1, Wo = W + 2 * pad - kw + 1, K = Ci * kh * kw, HW = Ho * Wo;
  const out = allocF32(B * Co * HW, { zeroed: false });
  if (Co * HW * K >= WASM_MIN_MACS && conv2dWasm(x, B, Ci, H, W, w, Co, kh, kw, b, pad, out)) return out;
  const chunk = Math.max(4, Math.min(HW, Math.floor((1 << 20) / K))); // pixels per GEMM, ~4 MiB of col
  const col = new Float32Array(chunk * K), res = new Float32Array(chunk * Co);
  for (let n = 0; n < B; n++) {
    for (let p0 = 0; p0 < HW; p0 += chunk) {
      const P = Math.min(chunk, HW - p0);
      im2col(x, n, Ci, H, W, kh, kw, pad, Wo, p0, P, col);
      gemmNT(col, P, K, w, Co, b, res);
      for (let p = 0; p < P; p++) {
        for (let co = 0; co < Co; co++) out[(n * Co + co) * HW + p0 + p] = res[p * Co + co]!;
      }
    }
  }
  return out;
}

/** Rows p0..p0+P of the patch matrix of image n: col[p, (ci, dy, dx)]. */
function im2col(
  x: Float32Array,
  n: number,
  Ci: number,
  H: number,
  W: number,
  kh: number,
  kw: number,
  pad: number,
  Wo: number,
  p0: number,
  P: number,
  col: Float32Array,
): void {
  const K = Ci * kh * kw;
  for (let p = 0; p < P; p++) {
    const oy = Math.floor((p0 + p) / Wo), ox = (p0 + p) % Wo;
    let at = p * K;
    for (let ci = 0; ci < Ci; ci++) {
      const xb = (n * Ci + ci) * H * W;
      for (let dy = 0; dy < kh; dy++) {
        const iy = oy + dy - pad;
        const inside = iy >= 0 && iy < H;
        for (let dx = 0; dx < kw; dx++, at++) {
          const ix = ox + dx - pad;
          col[at] = inside && ix >= 0 && ix < W ? x[xb + iy * W + ix]! : 0;
        }
      }
    }
  }
}

/** x [BC, h, w] -> [BC, size, size]: out = M X Mᵀ per channel (separable resampling). */
export function interpolate({ x, BC, h, w, size, mode }: Args<"interpolate">): Float32Array {
  const my = resampleMatrix(mode, h, size), mx = resampleMatrix(mode, w, size);
  const out = allocF32(BC * size * size, { zeroed: false });
  const tmp = new Float64Array(size * w);
  for (let c = 0; c < BC; c++) {
    const xb = c * h * w;
    tmp.fill(0);
    for (let o = 0; o < size; o++) {
      for (let i = 0; i < h; i++) {
        const wt = my[o * h + i]!;
        if (wt !== 0) { for (let j = 0; j < w; j++) tmp[o * w + j]! += wt * x[xb + i * w + j]!; }
      }
    }
    for (let o = 0; o < size; o++) {
      for (let p = 0; p < size; p++) {
        let s = 0;
        for (let j = 0; j < w; j++) s += mx[p * w + j]! * tmp[o * w + j]!;
        out[(c * size + o) * size + p] = s;
      }
    }
  }
  return out;
}

/**
 * GroupNorm with affine: x [B, C, S] (S = H·W), statistics per (batch, group) over (C/groups)·S
 * values. Each channel's S values are summed, then centred on their own mean while still in cache
 * (256 KiB at 256×256); the group's Σ(x − mean)² is Σ_c M2_c + S·Σ_c (mean_c − mean)² (the exact
 * parallel-variance identity, `groupAffine` of ./loops.ts, which the WebAssembly path shares), so a
 * group is read twice from memory, not three times, with the
 * accuracy of the two-pass variance. Sums in float64, two accumulators each. Where S is a multiple
 * of 16 the same computation runs in WebAssembly on all threads (`./wasm/norm.ts`), with SiLU
 * (`silu`) fused into its single write; here SiLU follows as `unary` computes it.
 */
export function groupNorm({ x, w, b, B, C, S, groups, eps, silu }: Args<"groupNorm">): Float32Array {
  const out = allocF32(x.length, { zeroed: false });
  if (groupNormWasm(x, w, b, B, C, S, groups, eps, silu, out)) return out;
  // per channel: mean and Σ(x − mean)² (the channel is in cache for the second pass)
  const channels = B * C, stats = new Float64Array(2 * channels), affine = new Float64Array(2 * channels);
  for (let ch = 0; ch < channels; ch++) {
    const at = ch * S, end = at + S;
    let s0 = 0, s1 = 0, i = at;
    for (; i + 1 < end; i += 2) s0 += x[i]!, s1 += x[i + 1]!;
    if (i < end) s0 += x[i]!;
    const mc = (s0 + s1) / S;
    let v0 = 0, v1 = 0;
    for (i = at; i + 1 < end; i += 2) {
      const d0 = x[i]! - mc, d1 = x[i + 1]! - mc;
      v0 += d0 * d0, v1 += d1 * d1;
    }
    if (i < end) v0 += (x[i]! - mc) * (x[i]! - mc);
    stats[2 * ch] = mc, stats[2 * ch + 1] = v0 + v1;
  }
  groupAffine(stats, w, b, C, groups, S, eps, affine);
  for (let ch = 0; ch < channels; ch++) {
    const scale = affine[2 * ch]!, shift = affine[2 * ch + 1]!;
    for (let i = ch * S, end = i + S; i < end; i++) out[i] = x[i]! * scale + shift;
  }
  if (silu) activate(out, "silu", out);
  return out;
}

/** Nearest-neighbour upsampling: x [BC, h, w] -> [BC, f·h, f·w]. */
export function upsampleNearest({ x, BC, h, w, factor: f }: Args<"upsampleNearest">): Float32Array {
  const H = h * f, W = w * f;
  const out = allocF32(BC * H * W, { zeroed: false });
  for (let c = 0; c < BC; c++) {
    for (let y = 0; y < H; y++) {
      const src = (c * h + Math.floor(y / f)) * w, dst = (c * H + y) * W;
      for (let xo = 0; xo < W; xo++) out[dst + xo] = x[src + Math.floor(xo / f)]!;
    }
  }
  return out;
}
