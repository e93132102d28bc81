/**
 * @file The kernel contract: every kernel a generated module calls, with the same names and
 * arguments on every target. `T` is the target's tensor (host typed arrays on js, device tensors on
 * WebGPU, whose kernels take the device first: `OnDevice`). Both runtimes are checked against it
 * (`kernels_test.ts`), and the code generator names kernels by `KernelName`, so an op whose kernel a
 * runtime lacks fails type checking.
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

/** The kernels, by name; shapes are static numbers except `B` (the batch), known when the entry runs. */
export interface Kernels<T> {
  /** [L] i32: the scale index of every token of a schedule. */
  levelIds(schedule: readonly number[]): T;
  /** table [N, C], idx [...] (i32; out-of-range indices are an error naming `what`) -> [..., C]. */
  gather(table: T, N: number, C: number, idx: T, what: string): T;
  /** act(x [M, K] · w [N, K]ᵀ (+ b [N])) -> [M, N]; act as `unary` computes it. */
  linear(x: T, M: number, K: number, w: T, N: number, b: T | null, act: LinearAct): T;
  /** Over the last axis of C, no affine. */
  layerNorm(x: T, C: number, eps: number): T;
  /** x [B, C, S] with weight and bias [C], statistics per (batch, group); then SiLU when `silu`. */
  groupNorm(x: T, w: T, b: T, B: number, C: number, S: number, groups: number, eps: number, silu: boolean): T;
  /** x / max(‖x‖₂, eps) over the last axis of D. */
  l2Normalize(x: T, D: number, eps: number): T;
  unary(x: T, fn: UnaryFn): T;
  /** fn(a, b) over `shape`, each input read with its strides over it (0 on broadcast axes). */
  binary(
    a: T,
    b: T,
    fn: BinaryFn,
    shape: readonly number[],
    aStrides: readonly number[],
    bStrides: readonly number[],
  ): T;
  scalar(x: T, fn: ScalarFn, value: number): T;
  /** Transpose: out.shape[i] = shape[perm[i]]. */
  permute(x: T, shape: readonly number[], perm: readonly number[]): T;
  /** [outer, size, inner] -> [outer, end − start, inner]. */
  slice(x: T, outer: number, size: number, inner: number, start: number, end: number): T;
  /** [outer, sizes[i], inner] joined along the middle axis. */
  concat(xs: readonly T[], outer: number, sizes: readonly number[], inner: number): T;
  /** softmax(scale·q kᵀ) v over each query's key range; q [BH, Tq, D], k [BH, Tk, D], v [BH, Tk, Dv]. */
  attention(
    q: T,
    k: T,
    v: T,
    BH: number,
    Tq: number,
    Tk: number,
    D: number,
    Dv: number,
    scale: number,
    ranges: KeyRanges,
  ): T;
  /** Attention with exp ≈ the polynomial of `table` (block-causal over scales of `sizes`, or unmasked). */
  lowrankAttention(
    q: T,
    k: T,
    v: T,
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
  ): T;
  /** The generation state S' = S + Σ_j φ(k_j) [v_j, 1] [BH, r, Dv + 1]; keys above `keyNorm` are an error. */
  lowrankState(
    k: T,
    v: T,
    prev: T | null,
    BH: number,
    T: number,
    D: number,
    Dv: number,
    table: FeatureTable,
    keyNorm: number,
    what: string,
  ): T;
  /** out_i = (φ(q_i)ᵀ S)[:Dv] / (φ(q_i)ᵀ S)[Dv]. */
  lowrankRead(
    q: T,
    state: T,
    BH: number,
    T: number,
    D: number,
    Dv: number,
    scale: number,
    table: FeatureTable,
    beta: number,
    keyNorm: number,
    what: string,
  ): T;
  /** x [B, Ci, H, W] * w [Co, Ci, kh, kw] + b [Co], stride 1, zero padding `pad`. */
  conv2d(
    x: T,
    B: number,
    Ci: number,
    H: number,
    W: number,
    w: T,
    Co: number,
    kh: number,
    kw: number,
    b: T,
    pad: number,
  ): T;
  /** x [BC, h, w] -> [BC, size, size], PyTorch bicubic (a = −0.75) or area. */
  interpolate(x: T, BC: number, h: number, w: number, size: number, mode: "bicubic" | "area"): T;
  /** x [BC, h, w] -> [BC, factor·h, factor·w], nearest neighbour. */
  upsampleNearest(x: T, BC: number, h: number, w: number, factor: number): T;
  /** NaN or ±Inf in x is an error naming `what` (`--check-numerics`). */
  checkFinite(x: T, what: string): void;
}

/** A kernel's name, as the code generator writes it. */
export type KernelName = keyof Kernels<unknown>;

/** The kernels of a device target: the same arguments after the device. */
export type OnDevice<K, D> = {
  readonly [P in keyof K]: K[P] extends (...args: infer A) => infer R ? (device: D, ...args: A) => R : never;
};
