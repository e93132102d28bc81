/**
 * @file The varc tensor DSL: the declarations a spec type-checks against.
 *
 * Specs are read by the compiler (`compiler/dsl/mod.ts`), never executed: these
 * are ambient declarations, and importing this file at run time fails. Every
 * function below is a builtin the front end implements; every tensor it
 * returns is an IR node that keeps the span of the call.
 *
 * Shapes: `B` is the batch size, known only at run time; every other size is
 * a number known when the spec is compiled.
 * @module
 */

/** The run-time batch size, usable as a dimension. */
export declare const B: Batch;
/** Marker type of `B`. */
export interface Batch {
  readonly __batch: true;
}
/** A dimension: a number or `B`. */
export type Dim = number | Batch;
/** A symbolic tensor (an IR value). */
export interface Tensor {
  readonly __tensor: true;
}
/** A mask over scales, from `blockCausal` or `scaleWindow`. */
export interface Mask {
  readonly kind: "none" | "block_causal" | "scale_window";
}
/** A compiled model description, from `model`. */
export interface Model {
  readonly __model: true;
}
/** Values allowed in model metadata. */
export type Meta = number | string | boolean | readonly Meta[] | { readonly [k: string]: Meta };

// ── Structure ─────────────────────────────────────────────────────────────

/**
 * The model: its entry points (each a set of named outputs computed from the inputs they reach;
 * `outputs` is shorthand for one entry named "forward"), metadata, and checkpoint tensors it may
 * ignore. Must be the spec's default export.
 */
export declare function model(m: {
  name: string;
  outputs?: Record<string, Tensor>;
  entries?: Record<string, Record<string, Tensor>>;
  meta?: Record<string, Meta>;
  optionalWeights?: readonly string[];
}): Model;
/** A run-time input; indices are `"i32"`. */
export declare function input(name: string, shape: readonly Dim[], dtype?: "f32" | "i32"): Tensor;
/** A checkpoint tensor by state-dict name, from the VAR (default) or the VQ-VAE file. */
export declare function param(name: string, shape: readonly number[], source?: "var" | "vae"): Tensor;
/** Names a tensor so it can be tapped (`forward --tap`) and shows in printed IR. */
export declare function tag(x: Tensor, label: string): Tensor;
/** [0, 1, …, n-1]. */
export declare function range(n: number): number[];

// ── VAR structure helpers ─────────────────────────────────────────────────

/** A validated VAR configuration: the fields given plus defaults and derived sizes. */
export interface VarConfig {
  readonly name: string;
  readonly depth: number;
  readonly width: number;
  readonly heads: number;
  readonly headDim: number;
  readonly mlpRatio: number;
  readonly ffnHidden: number;
  readonly classes: number;
  readonly classNames: string;
  readonly vocab: number;
  readonly cvae: number;
  readonly schedule: readonly number[];
  readonly tokens: number;
  readonly sharedAdaLN: boolean;
  readonly normEps: number;
  /** Upper clamp of the attention temperature τ = exp(min(scale_mul, ln tauMax)); official: 100. */
  readonly tauMax: number;
  readonly phiIndex: readonly number[];
  readonly vaeCh: number;
  readonly vaeChMult: readonly number[];
  readonly vaeResBlocks: number;
  /** Side of the generated image: last scale × 2^(levels − 1). */
  readonly imageSize: number;
}
/** Options a VAR preset gives; `varConfig` checks them and reports each bad field at its span. */
export interface VarOptions {
  name: string;
  depth: number;
  width: number;
  heads: number;
  schedule: readonly number[];
  mlpRatio?: number;
  classes?: number;
  /** One printable character per class, e.g. "0123456789" (the demo and the web page show them). */
  classNames?: string;
  vocab?: number;
  cvae?: number;
  sharedAdaLN?: boolean;
  normEps?: number;
  tauMax?: number;
  vaeCh?: number;
  vaeChMult?: readonly number[];
  vaeResBlocks?: number;
}
/** Validates VAR options (sizes positive, width divisible by heads, schedule increasing, …). */
export declare function varConfig(o: VarOptions): VarConfig;
/** The official Phi table: which of the 4 shared Phi convs each of `scales` scales uses. */
export declare function phiIndex(scales: number): number[];
/** Official block-causal mask: scale s sees scales 0..s. */
export declare function blockCausal(schedule: readonly number[]): Mask;
/** No mask: every query sees every key. */
export declare function noMask(): Mask;
/** Scale s sees only scales s-window+1..s (window 2: itself and the previous scale). */
export declare function scaleWindow(schedule: readonly number[], window: number): Mask;
/** [L] i32: the scale index of every token of the schedule. */
export declare function levelIds(schedule: readonly number[]): Tensor;

// ── Tensor ops ────────────────────────────────────────────────────────────

/** table [N, C], idx [...] (i32) -> [..., C]. */
export declare function gather(table: Tensor, idx: Tensor): Tensor;
/** x [..., K] @ w[N, K]ᵀ + b [N] -> [..., N]. */
export declare function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor;
/** GroupNorm over x [B, C, H, W] with affine w, b [C]. */
export declare function groupNorm(x: Tensor, w: Tensor, b: Tensor, groups: number, eps: number): Tensor;
/** Nearest-neighbour upsampling of x [B, C, h, w] by an integer factor. */
export declare function upsampleNearest(x: Tensor, factor: number): Tensor;
/** LayerNorm over the last axis without affine. */
export declare function layerNorm(x: Tensor, eps: number): Tensor;
/** x / max(‖x‖₂, eps) over the last axis. */
export declare function l2Normalize(x: Tensor, eps: number): Tensor;
/** x · sigmoid(x). */
export declare function silu(x: Tensor): Tensor;
/** GELU, tanh approximation. */
export declare function geluTanh(x: Tensor): Tensor;
/** eˣ. */
export declare function exp(x: Tensor): Tensor;
/** a + b, broadcasting. */
export declare function add(a: Tensor, b: Tensor): Tensor;
/** a - b, broadcasting. */
export declare function sub(a: Tensor, b: Tensor): Tensor;
/** a · b, broadcasting. */
export declare function mul(a: Tensor, b: Tensor): Tensor;
/** x · c. */
export declare function scale(x: Tensor, c: number): Tensor;
/** x + c. */
export declare function shift(x: Tensor, c: number): Tensor;
/** min(x, c). */
export declare function clampMax(x: Tensor, c: number): Tensor;
/** min(max(x, lo), hi). */
export declare function clamp(x: Tensor, lo: number, hi: number): Tensor;
/** Same elements, new shape. */
export declare function reshape(x: Tensor, shape: readonly Dim[]): Tensor;
/** Axes reordered: out.shape[i] = x.shape[perm[i]]. */
export declare function permute(x: Tensor, perm: readonly number[]): Tensor;
/** [start, end) along `axis`. */
export declare function slice(x: Tensor, axis: number, start: number, end: number): Tensor;
/** Tensors joined along `axis`. */
export declare function concat(xs: readonly Tensor[], axis: number): Tensor;
/** q [B,H,T,D], k/v [B,H,T,D]: softmax(scale · q kᵀ + mask) v. */
export declare function attention(q: Tensor, k: Tensor, v: Tensor, o: { scale: number; mask: Mask }): Tensor;
/** x [B,Ci,H,W] * w [Co,Ci,k,k] + b [Co], stride 1, zero padding. */
export declare function conv2d(x: Tensor, w: Tensor, b: Tensor, padding: number): Tensor;
/** x [B,C,h,w] -> [B,C,size,size]: PyTorch bicubic (a = -0.75, half-pixel) or area. */
export declare function interpolate(x: Tensor, size: number, mode: "bicubic" | "area"): Tensor;
