/** @file Every IR operation, its parameters, and one line of semantics each. */
import type { BinaryFn, LinearAct, ScalarFn, UnaryFn } from "../../runtime/kernels.ts";

/** Which checkpoint a parameter lives in. */
export type ParamSource = "var" | "vae";

/** Which keys a query may see, by the scale each token belongs to. */
export type MaskSpec =
  | { readonly kind: "none" }
  /** Scale s sees scales 0..s (official VAR). */
  | { readonly kind: "block_causal"; readonly schedule: readonly number[] }
  /** Scale s sees scales max(0, s - window + 1)..s (window 2: itself and the previous scale). */
  | { readonly kind: "scale_window"; readonly schedule: readonly number[]; readonly window: number };

/** Where an attention node's logit bound comes from, strongest first. */
export type BoundSource = "static-exact" | "static-propagated" | "calibrated" | "none";

/** What `norm-bounds` proved (or measured) about the logits s·⟨q_i, k_j⟩ of an attention node. */
export interface AttentionBound {
  readonly source: BoundSource;
  /** Logit half-range β_h per head: every logit of head h lies in [−β_h, β_h] (Infinity: unknown). */
  readonly betaPerHead: readonly number[];
  /** Upper bounds of max |q|, max |k| entries (the paper's R is √(s·d)·max of the two). */
  readonly qAbsMax: number;
  readonly kAbsMax: number;
  /** Upper bounds of ‖q_i‖₂ and ‖k_j‖₂ (β = s · qNorm · kNorm for a single-head bound). */
  readonly qNorm: number;
  readonly kNorm: number;
  /** Upper bound of max |v| entries (sizes the output error bound 2ε/(1−ε)·‖V‖∞). */
  readonly vAbsMax: number;
  /** One line on how the bound was obtained. */
  readonly how: string;
}

/** The polynomial a low-rank kernel uses: P(x) = Σ coeffs[t] x^t ≈ e^x on [−beta, beta]. */
export interface LowRankPlan {
  readonly family: "taylor" | "chebyshev";
  readonly degree: number;
  readonly rank: number;
  readonly beta: number;
  readonly eps: number;
  readonly coeffs: readonly number[];
  /** Analytic relative-error bound of P on [−beta, beta] (≤ eps). */
  readonly relError: number;
}

/** Every tensor operation. Values appear verbatim in printed IR and golden tests. */
export enum Op {
  Input = "input", // runtime input tensor
  Param = "param", // checkpoint tensor, by state-dict name
  LevelIds = "level_ids", // [L] i32: the scale index of every token of a schedule
  Gather = "gather", // table [N, C], idx [...] -> [..., C]
  Linear = "linear", // act(x [..., K] @ w[N, K]ᵀ (+ b [N])) -> [..., N]
  LayerNorm = "layer_norm", // over the last axis, no affine; with inputs s, b [B,1,C] (x [B,T,C]): h + h·s + b
  GroupNorm = "group_norm", // x [B,C,H,W], weight/bias [C]: normalise each of `groups` channel groups over (C/groups, H, W), then SiLU if `silu`
  L2Normalize = "l2_normalize", // x / max(‖x‖₂, eps) over the last axis
  Unary = "unary", // elementwise fn(x)
  Binary = "binary", // elementwise fn(a, b) with numpy broadcasting; with a third input c (fn add): a + b·c
  Scalar = "scalar", // elementwise fn(x, constant)
  Reshape = "reshape", // same elements, new shape (row-major)
  Permute = "permute", // axes reordered: out.shape[i] = in.shape[perm[i]]
  Heads = "heads", // x [B,T,W] -> [B,H,T,D]: columns start + hD + d, L2-normalised over d if eps, times τ [1,H,1,1] if given
  Slice = "slice", // [start, end) along one axis
  Concat = "concat", // inputs joined along one axis
  Attention = "attention", // q [B,H,Tq,D], k/v [B,H,Tk,D]: softmax(scale·q kᵀ + mask) v; lowered by lower-attention
  ExactAttention = "exact_attention", // attention, fused online softmax (no [Tq, Tk] matrix)
  LowRankAttention = "lowrank_attention", // attention with exp ≈ P: features in-kernel, prefix state over scales
  LowRankState = "lowrank_state", // S' = S + Σ_j φ_k(k_j) [v_j, 1]: the generation state of one block [B,H,r,Dv+1]
  LowRankRead = "lowrank_read", // out_i = (φ_q(q_i)ᵀ S)[:Dv] / (φ_q(q_i)ᵀ S)[Dv]
  Conv2d = "conv2d", // x [B,Ci,H,W], w [Co,Ci,kh,kw], b [Co]; stride 1, zero padding
  Interpolate = "interpolate", // x [B,C,h,w] -> [B,C,size,size]; PyTorch bicubic (a=-0.75) or area
  Upsample = "upsample", // x [B,C,h,w] -> [B,C,f·h,f·w], nearest neighbour
}

/** Elementwise functions: the kernel contract's (`runtime/kernels.ts`). */
export type { BinaryFn, LinearAct, ScalarFn, UnaryFn };
export type DTypeName = "f32" | "i32";
/** A dimension: a static size, or the batch size known only at run time. */
export type Dim = number | "B";

/** Parameters of each op. Adding an Op without an entry is a type error. */
export interface OpParams {
  [Op.Input]: { readonly name: string; readonly dtype: DTypeName; readonly shape: readonly Dim[] };
  [Op.Param]: { readonly name: string; readonly shape: readonly number[]; readonly source: ParamSource };
  [Op.LevelIds]: { readonly schedule: readonly number[] };
  [Op.Gather]: Record<never, never>;
  [Op.Linear]: { readonly bias: boolean; readonly act: LinearAct };
  [Op.LayerNorm]: { readonly eps: number };
  [Op.GroupNorm]: { readonly groups: number; readonly eps: number; readonly silu: boolean };
  [Op.L2Normalize]: { readonly eps: number };
  [Op.Unary]: { readonly fn: UnaryFn };
  [Op.Binary]: { readonly fn: BinaryFn };
  [Op.Scalar]: { readonly fn: ScalarFn; readonly value: number };
  [Op.Reshape]: { readonly shape: readonly Dim[] };
  [Op.Permute]: { readonly perm: readonly number[] };
  /** pass fuse-heads: slice, split into heads, (L2-normalise,) (scale per head) in one node. */
  [Op.Heads]: { readonly start: number; readonly heads: number; readonly dim: number; readonly eps: number | null };
  [Op.Slice]: { readonly axis: number; readonly start: number; readonly end: number };
  [Op.Concat]: { readonly axis: number };
  [Op.Attention]: { readonly scale: number; readonly mask: MaskSpec; readonly bound?: AttentionBound };
  [Op.ExactAttention]: {
    readonly scale: number;
    readonly mask: MaskSpec;
    readonly bound?: AttentionBound;
    readonly reason: string;
  };
  [Op.LowRankAttention]: {
    readonly scale: number;
    readonly mask: MaskSpec;
    readonly bound: AttentionBound;
    readonly plan: LowRankPlan;
    readonly reason: string;
  };
  [Op.LowRankState]: {
    readonly scale: number;
    readonly plan: LowRankPlan;
    /** Bound every key must meet (checked by the kernel's guard). */
    readonly keyNorm: number;
    readonly stateName: string;
  };
  [Op.LowRankRead]: { readonly scale: number; readonly plan: LowRankPlan; readonly keyNorm: number };
  [Op.Conv2d]: { readonly padding: number };
  [Op.Interpolate]: { readonly mode: "bicubic" | "area"; readonly size: number };
  [Op.Upsample]: { readonly factor: number };
}

/** How many inputs each op takes (`"n"`: one or more). */
export const arity: { readonly [O in Op]: number | "n" | readonly [number, number] } = {
  [Op.Input]: 0,
  [Op.Param]: 0,
  [Op.LevelIds]: 0,
  [Op.Gather]: 2,
  [Op.Linear]: [2, 3],
  [Op.LayerNorm]: [1, 3],
  [Op.GroupNorm]: 3,
  [Op.L2Normalize]: 1,
  [Op.Unary]: 1,
  [Op.Binary]: [2, 3],
  [Op.Scalar]: 1,
  [Op.Reshape]: 1,
  [Op.Permute]: 1,
  [Op.Heads]: [1, 2],
  [Op.Slice]: 1,
  [Op.Concat]: "n",
  [Op.Attention]: 3,
  [Op.ExactAttention]: 3,
  [Op.LowRankAttention]: 3,
  [Op.LowRankState]: [2, 3],
  [Op.LowRankRead]: 2,
  [Op.Conv2d]: 3,
  [Op.Interpolate]: 1,
  [Op.Upsample]: 1,
};
