/**
 * @file The kernel contract: every kernel a generated module calls, by name, each taking one record
 * of named arguments (`K.linear({ x, M, K, w, N, b })`). `F` and `I` are the target's float32 and
 * int32 tensors (typed arrays on js; one `GpuTensor` type on WebGPU, whose kernels take the device
 * first: `OnDevice`). Each runtime's kernel module checks itself against it (`Implements`) and the
 * code generator writes each call's record from `KernelArgs` (`compiler/backends/render.ts`), so an
 * op whose kernel a runtime lacks, or a field one side names differently, fails type checking.
 */
import type { FeatureTable } from "./js/lowrank.ts";

/** Per query row, the key range [lo, hi) it attends to (host arrays: a hoisted constant on every target). */
export interface KeyRanges {
  readonly lo: Int32Array;
  readonly hi: Int32Array;
}

export type { FeatureTable };

/** Elementwise functions of `unary`, `binary` and `scalar`. */
export type UnaryFn = "silu" | "gelu_tanh" | "exp";
export type BinaryFn = "add" | "sub" | "mul";
export type ScalarFn = "mul" | "add" | "min" | "max";
/** What `linear` applies to its outputs: nothing, or a `unary` function fused into the GEMM. */
export type LinearAct = "none" | "silu" | "gelu_tanh";

/** What both attention kernels take: q [BH, Tq, D], k [BH, Tk, D], v [BH, Tk, Dv] and the logit scale. */
export interface AttentionOperands<F> {
  q: F;
  k: F;
  v: F;
  BH: number;
  Tq: number;
  Tk: number;
  D: number;
  Dv: number;
  scale: number;
}

/**
 * The kernels, by name, each a function of one argument record. Shapes are static numbers except `B`
 * (the batch), known when the entry runs.
 */
export interface Kernels<F, I = F> {
  /** [L] i32: the scale index of every token of a schedule. */
  readonly levelIds: (a: { schedule: readonly number[] }) => I;
  /** table [N, C], idx [...] (out-of-range indices are an error naming `what`) -> [..., C]. */
  readonly gather: (a: { table: F; N: number; C: number; idx: I; what: string }) => F;
  /** act(x [M, K] · w [N, K]ᵀ (+ b [N])) -> [M, N]; act as `unary` computes it. */
  readonly linear: (a: { x: F; M: number; K: number; w: F; N: number; b: F | null; act: LinearAct }) => F;
  /**
   * h = LayerNorm over the last axis of C, no affine; with s and b [rows / T, C] (one row per T rows
   * of x) the AdaLN modulation h + h·s + b, each step rounded to float32 as the binary kernels do.
   */
  readonly layerNorm: (a: { x: F; C: number; eps: number; s: F | null; b: F | null; T: number }) => F;
  /** x [B, C, S] with weight w and bias b [C], statistics per (batch, group); then SiLU when `silu`. */
  readonly groupNorm: (
    a: { x: F; w: F; b: F; B: number; C: number; S: number; groups: number; eps: number; silu: boolean },
  ) => F;
  /** x / max(‖x‖₂, eps) over the last axis of D. */
  readonly l2Normalize: (a: { x: F; D: number; eps: number }) => F;
  readonly unary: (a: { x: F; fn: UnaryFn }) => F;
  /** fn(a, b) over `shape`, each input read with its strides over it (0 on broadcast axes). */
  readonly binary: (
    a: { a: F; b: F; fn: BinaryFn; shape: readonly number[]; aStrides: readonly number[]; bStrides: readonly number[] },
  ) => F;
  /**
   * a + b·c over `shape` (a residual plus a gated branch), each input read with its strides over it;
   * b·c rounded to float32 first, so the bits are those of `binary` mul, then add, in one pass.
   */
  readonly addMul: (
    a: {
      a: F;
      b: F;
      c: F;
      shape: readonly number[];
      aStrides: readonly number[];
      bStrides: readonly number[];
      cStrides: readonly number[];
    },
  ) => F;
  readonly scalar: (a: { x: F; fn: ScalarFn; value: number }) => F;
  /**
   * Heads of a packed projection: x [rows = B·T, W] -> [B, H, T, D], out[b, h, t, d] = x[b·T + t,
   * start + h·D + d]; with eps, each row of D divided by max(‖·‖₂, eps) as `l2Normalize` does; with
   * tau [H], then times τ_h as `binary` mul does: the bits of slice, permute, l2Normalize and mul.
   */
  readonly heads: (
    a: {
      x: F;
      rows: number;
      T: number;
      W: number;
      start: number;
      H: number;
      D: number;
      eps: number | null;
      tau: F | null;
    },
  ) => F;
  /** Transpose (either dtype): out.shape[i] = shape[perm[i]]. */
  readonly permute: (a: { x: F | I; shape: readonly number[]; perm: readonly number[] }) => F | I;
  /** [outer, size, inner] -> [outer, end − start, inner] (either dtype). */
  readonly slice: (
    a: { x: F | I; outer: number; size: number; inner: number; start: number; end: number },
  ) => F | I;
  /** [outer, sizes[i], inner] joined along the middle axis. */
  readonly concat: (a: { xs: readonly F[]; outer: number; sizes: readonly number[]; inner: number }) => F;
  /** softmax(scale·q kᵀ) v over each query's key range; q [BH, Tq, D], k [BH, Tk, D], v [BH, Tk, Dv]. */
  readonly attention: (a: AttentionOperands<F> & { ranges: KeyRanges }) => F;
  /**
   * Attention with exp ≈ the polynomial of `table` (block-causal over scales of `sizes` within
   * `window` scales, or unmasked); heads whose logits exceed `beta` are computed exactly over `exactRanges`.
   */
  readonly lowrankAttention: (
    a: AttentionOperands<F> & {
      sizes: readonly number[] | null;
      window: number;
      table: FeatureTable;
      beta: number;
      exactRanges: KeyRanges;
    },
  ) => F;
  /** The generation state S' = S + Σ_j φ(k_j) [v_j, 1] [BH, r, Dv + 1]; keys above `keyNorm` are an error. */
  readonly lowrankState: (a: {
    k: F;
    v: F;
    prev: F | null;
    BH: number;
    T: number;
    D: number;
    Dv: number;
    table: FeatureTable;
    keyNorm: number;
    what: string;
  }) => F;
  /** out_i = (φ(q_i)ᵀ S)[:Dv] / (φ(q_i)ᵀ S)[Dv]; logits above `beta` are an error. */
  readonly lowrankRead: (a: {
    q: F;
    state: F;
    BH: number;
    T: number;
    D: number;
    Dv: number;
    scale: number;
    table: FeatureTable;
    beta: number;
    keyNorm: number;
    what: string;
  }) => F;
  /** x [B, Ci, H, W] * w [Co, Ci, kh, kw] + b [Co], stride 1, zero padding `pad`. */
  readonly conv2d: (a: {
    x: F;
    B: number;
    Ci: number;
    H: number;
    W: number;
    w: F;
    Co: number;
    kh: number;
    kw: number;
    b: F;
    pad: number;
  }) => F;
  /** x [BC, h, w] -> [BC, size, size], PyTorch bicubic (a = −0.75) or area. */
  readonly interpolate: (a: { x: F; BC: number; h: number; w: number; size: number; mode: "bicubic" | "area" }) => F;
  /** x [BC, h, w] -> [BC, factor·h, factor·w], nearest neighbour. */
  readonly upsampleNearest: (a: { x: F; BC: number; h: number; w: number; factor: number }) => F;
  /** NaN or ±Inf in x is an error naming `what` (`--check-numerics`). */
  readonly checkFinite: (a: { x: F; what: string }) => void;
}

/** A kernel's name, as the code generator writes it. */
export type KernelName = keyof Kernels<unknown>;

/** Every kernel's name, for tests that check each one: the `Record` makes a missing or extra name a type error. */
export const KERNEL_NAMES = Object.keys(
  {
    levelIds: 0,
    gather: 0,
    linear: 0,
    layerNorm: 0,
    groupNorm: 0,
    l2Normalize: 0,
    unary: 0,
    binary: 0,
    addMul: 0,
    scalar: 0,
    heads: 0,
    permute: 0,
    slice: 0,
    concat: 0,
    attention: 0,
    lowrankAttention: 0,
    lowrankState: 0,
    lowrankRead: 0,
    conv2d: 0,
    interpolate: 0,
    upsampleNearest: 0,
    checkFinite: 0,
  } satisfies Record<KernelName, 0>,
) as readonly KernelName[];

/** The argument record of kernel `K` for tensors `F` (float32) and `I` (int32). */
export type KernelArgs<K extends KernelName, F = unknown, I = F> = Parameters<Kernels<F, I>[K]>[0];

/**
 * `M` when it meets the contract `C`, else a type error where it is written: each runtime's kernel
 * module checks itself with it (`Implements<typeof import("./kernels.ts"), Kernels<…>>`).
 */
export type Implements<M extends C, C> = M;

/** The kernels of a device target: the same argument record after the device. */
export type OnDevice<K, D> = {
  readonly [P in keyof K]: K[P] extends (a: infer A) => infer R ? (device: D, a: A) => R : never;
};
