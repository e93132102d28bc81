/**
 * @file The official VAR model as DSL blocks (a spec library, read by the compiler, never run).
 *
 * Every block is a composition of DSL tensor ops, so a spec can swap or
 * rearrange them: pass its own `ffn`, another `mask`, or build a new model
 * from these pieces. Names of `param`s are the official state-dict names.
 * Shapes in comments: B batch, L tokens, C width, H heads, D head dim, V vocab.
 * @module
 */
import {
  add,
  attention,
  B,
  blockCausal,
  clampMax,
  concat,
  conv2d,
  exp,
  gather,
  geluTanh,
  input,
  interpolate,
  l2Normalize,
  layerNorm,
  levelIds,
  linear,
  type Mask,
  type Model,
  model,
  mul,
  param,
  permute,
  range,
  reshape,
  scale,
  silu,
  slice,
  tag,
  type Tensor,
  type VarConfig,
  varConfig,
  type VarOptions,
} from "../lang.ts";

/** A feed-forward block: x [B, L, C] -> [B, L, C]; `p` is the state-dict prefix. */
export type Ffn = (x: Tensor, p: string, c: VarConfig) => Tensor;

/** VAR options plus the blocks a variant may replace. */
export interface VarSpec extends VarOptions {
  ffn?: Ffn;
  mask?: Mask;
}

/** Checkpoint tensors the teacher-forced forward does not read. */
export const OPTIONAL_WEIGHTS = [
  "attn_bias_for_masking",
  "lvl_1L",
  "blocks.*.attn.zero_k_bias",
  "encoder.*",
  "quant_conv.*",
  "decoder.*",
  "post_quant_conv.*",
  "quantize.ema_vocab_hit_SV",
];

/** A whole VAR: teacher-forcing input from a token pyramid, then the transformer and head. */
export function varModel(spec: VarSpec): Model {
  const c = varConfig(spec);
  const labels = input("labels", [B], "i32"); // [B]
  const idx = input("idx_BL", [B, c.tokens], "i32"); // [B, L]
  const xTF = teacherForcingInput(idx, c); // [B, L-1, Cvae]
  const logits = transformer(labels, xTF, c, spec.ffn ?? tanhGeluFfn, spec.mask ?? blockCausal(c.schedule));
  return model({
    name: c.name,
    outputs: { logits_BLV: logits, x_BLCv_wo_first_l: xTF },
    meta: { ...c, family: "var" },
    optionalWeights: OPTIONAL_WEIGHTS,
  });
}

/** Official `VAR.forward`: xTF [B, L-1, Cvae] -> logits [B, L, V] under `mask`. */
export function transformer(labels: Tensor, xTF: Tensor, c: VarConfig, ffn: Ffn, mask: Mask): Tensor {
  const C = c.width;
  const cond = gather(param("class_emb.weight", [c.classes + 1, C]), labels); // [B, C]
  const sos = add(reshape(cond, [B, 1, C]), param("pos_start", [1, 1, C])); // [B, 1, C]
  const words = linear(xTF, param("word_embed.weight", [C, c.cvae]), param("word_embed.bias", [C]));
  const lvl = gather(param("lvl_embed.weight", [c.schedule.length, C]), levelIds(c.schedule)); // [L, C]
  const lvlPos = add(lvl, param("pos_1LC", [1, c.tokens, C])); // [1, L, C]
  let x = add(concat([sos, words], 1), lvlPos); // [B, L, C]
  const shared = c.sharedAdaLN ? adaLN(cond, "shared_ada_lin.1", C, 6) : undefined;
  for (let i = 0; i < c.depth; i++) {
    x = adaLNBlock(x, cond, shared, `blocks.${i}`, c, ffn, mask);
  }
  return head(x, cond, c);
}

/** SiLU(cond) @ Wᵀ + b, as [B, 1, n, C] chunks. */
export function adaLN(cond: Tensor, p: string, C: number, n: number): Tensor {
  const m = linear(silu(cond), param(`${p}.weight`, [n * C, C]), param(`${p}.bias`, [n * C]));
  return reshape(m, [B, 1, n, C]);
}

/** Chunk j of an AdaLN modulation [B, 1, n, C] as [B, 1, C]. */
export function chunk(m: Tensor, j: number, C: number): Tensor {
  return reshape(slice(m, 2, j, j + 1), [B, 1, C]);
}

/** LN(x)·(1 + s) + b without affine. */
export function modulate(x: Tensor, s: Tensor, b: Tensor, eps: number): Tensor {
  const h = layerNorm(x, eps);
  return add(add(h, mul(h, s)), b);
}

/** AdaLN self-attention block: x [B, L, C] -> [B, L, C]. Chunks: gamma1, gamma2, scale1, scale2, shift1, shift2. */
export function adaLNBlock(
  x: Tensor,
  cond: Tensor,
  shared: Tensor | undefined,
  p: string,
  c: VarConfig,
  ffn: Ffn,
  mask: Mask,
): Tensor {
  const C = c.width;
  const m = shared === undefined
    ? adaLN(cond, `${p}.ada_lin.1`, C, 6)
    : add(shared, param(`${p}.ada_gss`, [1, 1, 6, C]));
  const [g1, g2, s1, s2, b1, b2] = range(6).map((j) => chunk(m, j, C));
  const a = selfAttention(tag(modulate(x, s1, b1, c.normEps), `${p}.attn.x_in`), `${p}.attn`, c, mask);
  const h = add(x, mul(g1, a));
  return add(h, mul(g2, ffn(modulate(h, s2, b2, c.normEps), `${p}.ffn`, c)));
}

/** [B, L, C] -> [B, H, L, D] (head h = channels hD..hD+D-1). */
export function splitHeads(x: Tensor, c: VarConfig): Tensor {
  return permute(reshape(x, [B, c.tokens, c.heads, c.headDim]), [0, 2, 1, 3]);
}

/** [B, H, L, D] -> [B, L, C]. */
export function mergeHeads(x: Tensor, c: VarConfig): Tensor {
  return reshape(permute(x, [0, 2, 1, 3]), [B, c.tokens, c.width]);
}

/** Official SelfAttention: q/k L2-normalised per head, q scaled by τ_h = exp(min(scale_mul_h, ln 100)), softmax scale 1. */
export function selfAttention(x: Tensor, p: string, c: VarConfig, mask: Mask): Tensor {
  const C = c.width;
  const qkv = linear(x, param(`${p}.mat_qkv.weight`, [3 * C, C])); // [B, L, 3C], packed [q | k | v]
  const tau = exp(clampMax(param(`${p}.scale_mul_1H11`, [1, c.heads, 1, 1]), 4.605170249938965)); // [1, H, 1, 1]
  const q = add(slice(qkv, 2, 0, C), param(`${p}.q_bias`, [C]));
  const k = slice(qkv, 2, C, 2 * C); // the k bias is a zero buffer
  const v = add(slice(qkv, 2, 2 * C, 3 * C), param(`${p}.v_bias`, [C]));
  const qh = tag(mul(l2Normalize(splitHeads(q, c), 1e-12), tau), `${p}.q`); // [B, H, L, D]
  const kh = tag(l2Normalize(splitHeads(k, c), 1e-12), `${p}.k`);
  const vh = tag(splitHeads(v, c), `${p}.v`);
  const o = tag(mergeHeads(attention(qh, kh, vh, { scale: 1, mask }), c), `${p}.o`); // [B, L, C]
  return tag(linear(o, param(`${p}.proj.weight`, [C, C]), param(`${p}.proj.bias`, [C])), `${p}.out`);
}

/** Official FFN: fc2(gelu_tanh(fc1(x))). */
export function tanhGeluFfn(x: Tensor, p: string, c: VarConfig): Tensor {
  const h = geluTanh(
    linear(x, param(`${p}.fc1.weight`, [c.ffnHidden, c.width]), param(`${p}.fc1.bias`, [c.ffnHidden])),
  );
  return linear(h, param(`${p}.fc2.weight`, [c.width, c.ffnHidden]), param(`${p}.fc2.bias`, [c.width]));
}

/** AdaLN before the head ([scale, shift]), then the vocabulary projection: [B, L, C] -> [B, L, V]. */
export function head(x: Tensor, cond: Tensor, c: VarConfig): Tensor {
  const m = adaLN(cond, "head_nm.ada_lin.1", c.width, 2);
  const h = modulate(x, chunk(m, 0, c.width), chunk(m, 1, c.width), c.normEps);
  return linear(h, param("head.weight", [c.vocab, c.width]), param("head.bias", [c.vocab]));
}

/** Phi_k(h) = 0.5·h + 0.5·conv3x3_k(h) on [B, Cvae, n, n]. */
export function phi(h: Tensor, k: number, c: VarConfig): Tensor {
  const p = `quantize.quant_resi.qresi_ls.${k}`;
  const conv = conv2d(h, param(`${p}.weight`, [c.cvae, c.cvae, 3, 3], "vae"), param(`${p}.bias`, [c.cvae], "vae"), 1);
  return add(scale(h, 0.5), scale(conv, 0.5));
}

/** Codebook rows of the tokens [B, pn²] as a map [B, Cvae, pn, pn]. */
export function tokenMap(tokens: Tensor, pn: number, c: VarConfig): Tensor {
  const z = gather(param("quantize.embedding.weight", [c.vocab, c.cvae], "vae"), tokens); // [B, pn², Cvae]
  return reshape(permute(z, [0, 2, 1]), [B, c.cvae, pn, pn]);
}

/** Official `idxBl_to_var_input`: idx [B, L] -> [B, L-1, Cvae] (every scale but the first, channels last). */
export function teacherForcingInput(idx: Tensor, c: VarConfig): Tensor {
  const n = c.schedule[c.schedule.length - 1];
  const outs: Tensor[] = [];
  let fhat: Tensor | undefined = undefined;
  let start = 0;
  for (let s = 0; s < c.schedule.length - 1; s++) {
    const pn = c.schedule[s];
    const z = tokenMap(slice(idx, 1, start, start + pn * pn), pn, c);
    const h = phi(interpolate(z, n, "bicubic"), c.phiIndex[s], c); // [B, Cvae, n, n]
    fhat = fhat === undefined ? h : add(fhat, h);
    const next = c.schedule[s + 1];
    const down = interpolate(fhat, next, "area"); // [B, Cvae, next, next]
    outs.push(reshape(permute(down, [0, 2, 3, 1]), [B, next * next, c.cvae]));
    start += pn * pn;
  }
  return concat(outs, 1);
}
