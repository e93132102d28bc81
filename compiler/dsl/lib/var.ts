/**
 * @file The official VAR model as DSL blocks (a spec library, read by the compiler, never run).
 *
 * Every block is a composition of DSL tensor ops, so a spec can swap or rearrange them: pass its
 * own `ffn`, limit attention to a `window` of scales, or build a new model from these pieces.
 * `param` names are the official state-dict names.
 * Shapes in comments: B batch, L tokens, T tokens of one call, C width, H heads, D head dim, V vocab.
 * @module
 */
import {
  add,
  attention,
  B,
  blockCausal,
  clampMax,
  concat,
  exp,
  gather,
  geluTanh,
  input,
  l2Normalize,
  layerNorm,
  levelIds,
  linear,
  type Mask,
  type Model,
  model,
  mul,
  noMask,
  param,
  permute,
  range,
  reshape,
  scale,
  scaleWindow,
  silu,
  slice,
  tag,
  type Tensor,
  type VarConfig,
  varConfig,
  type VarOptions,
} from "../lang.ts";
import { decoder, nextInput, scaleResidual, toUnit } from "./vqvae.ts";

/** A feed-forward block: x [B, T, C] -> [B, T, C]; `p` is the state-dict prefix. */
export type Ffn = (x: Tensor, p: string, c: VarConfig) => Tensor;

/** Attention of block `i`: q [B, H, T, D], k/v of the same tokens -> [B, H, T, D]. */
export type Attend = (q: Tensor, k: Tensor, v: Tensor, i: number) => Tensor;

/** VAR options plus the blocks a variant may replace. */
export interface VarSpec extends VarOptions {
  /** Feed-forward block (default: the official tanh-GELU MLP). */
  ffn?: Ffn;
  /** Scales each scale attends to, counting itself (default: all earlier scales, block-causal). */
  window?: number;
}

/** Checkpoint tensors no entry reads: buffers, the encoder, training statistics. */
export const OPTIONAL_WEIGHTS = [
  "attn_bias_for_masking",
  "lvl_1L",
  "blocks.*.attn.zero_k_bias",
  "encoder.*",
  "quant_conv.*",
  "quantize.ema_vocab_hit_SV",
];

/**
 * A whole VAR. Entries: `forward` (teacher-forced logits of a token pyramid), `step_s` (scale s of
 * generation against the KV cache of the earlier scales), `fhat_s` (add scale s's tokens to f̂ and
 * make the next input), `tokens_to_fhat` and `decode` (f̂ -> image in [0, 1]).
 */
export function varModel(spec: VarSpec): Model {
  const c = varConfig(spec);
  const ffn = spec.ffn ?? tanhGeluFfn;
  const window = spec.window ?? c.schedule.length;
  const S = c.schedule.length;
  const mask = window >= S ? blockCausal(c.schedule) : scaleWindow(c.schedule, window);
  const entries: Record<string, Record<string, Tensor>> = {
    forward: forwardEntry(c, ffn, mask),
    tokens_to_fhat: { fhat: fhatFromTokens(input("idx_BL", [B, c.tokens], "i32"), c) },
    decode: { img: toUnit(decoder(input("fhat", [B, c.cvae, lastSide(c), lastSide(c)]), c)) },
  };
  const steps = range(S).map((s): [string, Record<string, Tensor>] => [`step_${s}`, stepEntry(s, c, ffn, window)]);
  const fhats = range(S).map((s): [string, Record<string, Tensor>] => [`fhat_${s}`, fhatEntry(s, c)]);
  return model({
    name: c.name,
    entries: [...steps, ...fhats].reduce((o, [k, v]) => ({ ...o, [k]: v }), entries),
    meta: { ...c, window, family: "var" },
    optionalWeights: OPTIONAL_WEIGHTS,
  });
}

function lastSide(c: VarConfig): number {
  return c.schedule[c.schedule.length - 1];
}

/** Official `VAR.forward`: logits [B, L, V] of a token pyramid idx [B, L] under `mask`. */
export function forwardEntry(c: VarConfig, ffn: Ffn, mask: Mask): Record<string, Tensor> {
  const labels = input("labels", [B], "i32"); // [B]
  const xTF = teacherForcingInput(input("idx_BL", [B, c.tokens], "i32"), c); // [B, L-1, Cv]
  const cond = classEmbedding(labels, c);
  const x = add(concat([startToken(cond, c), wordEmbed(xTF, c)], 1), levelPosition(c, 0, c.tokens));
  const attend: Attend = (q, k, v) => attention(q, k, v, { scale: 1, mask });
  return { logits_BLV: transformer(x, modulations(cond, c), c, ffn, attend, c.tokens), x_BLCv_wo_first_l: xTF };
}

/**
 * Scale s of `autoregressive_infer_cfg` on 2B rows (conditional, then unconditional labels): the
 * input is the start token (s = 0) or `x_words` [2B, pn², Cv]; `k_i`/`v_i` [2B, H, P, D] hold the
 * keys and values of the earlier scales and come back extended by this scale. The AdaLN
 * modulations depend on the labels alone: scale 0 computes them from the labels and every scale
 * but the last hands them on (`ada_i`, `ada_head`), so the later ones read no ada_lin weights.
 */
export function stepEntry(s: number, c: VarConfig, ffn: Ffn, window: number): Record<string, Tensor> {
  const pn = c.schedule[s];
  const start = tokensBefore(c, s), T = pn * pn;
  const cond = s === 0 ? classEmbedding(input("labels", [B], "i32"), c) : undefined;
  const mods = cond ? modulations(cond, c) : carriedModulations(c);
  const x0 = cond ? startToken(cond, c) : wordEmbed(input("x_words", [B, T, c.cvae]), c);
  const x = add(x0, levelPosition(c, start, start + T));
  const caches: [string, Tensor][] = [];
  const visible = tokensBefore(c, Math.max(0, s - window + 1)); // keys before this index are out of the window
  const attend: Attend = (q, k, v, i) => {
    const grow = (t: Tensor, name: string) => {
      const all = s === 0 ? t : concat([input(name, [B, c.heads, start, c.headDim]), t], 2);
      caches.push([name, all]);
      return visible === 0 ? all : slice(all, 2, visible, start + T);
    };
    return attention(q, grow(k, `k_${i}`), grow(v, `v_${i}`), { scale: 1, mask: noMask() });
  };
  const logits = transformer(x, mods, c, ffn, attend, T);
  const handed: [string, Tensor][] = s === c.schedule.length - 1
    ? []
    : [...mods.blocks.map((m, i): [string, Tensor] => [`ada_${i}`, m]), ["ada_head", mods.head]];
  return [...caches, ...handed].reduce((o, [k, v]) => ({ ...o, [k]: v }), { logits });
}

/** Adds scale s's tokens `idx` [B, pn²] to `fhat` [B, Cv, n, n] (none at s = 0) and makes the next input. */
export function fhatEntry(s: number, c: VarConfig): Record<string, Tensor> {
  const pn = c.schedule[s];
  const h = scaleResidual(input("idx", [B, pn * pn], "i32"), s, c);
  const fhat = s === 0 ? h : add(input("fhat", [B, c.cvae, lastSide(c), lastSide(c)]), h);
  if (s === c.schedule.length - 1) return { fhat };
  return { fhat, x_words: nextInput(fhat, c.schedule[s + 1], c) };
}

/** Tokens of the scales before scale s. */
export function tokensBefore(c: VarConfig, s: number): number {
  return c.schedule.slice(0, s).reduce((a, pn) => a + pn * pn, 0);
}

/** Official `idxBl_to_var_input`: idx [B, L] -> [B, L-1, Cv] (every scale but the first, channels last). */
export function teacherForcingInput(idx: Tensor, c: VarConfig): Tensor {
  const outs: Tensor[] = [];
  let fhat: Tensor | undefined = undefined;
  for (let s = 0; s < c.schedule.length - 1; s++) {
    const h = scaleResidual(scaleTokens(idx, s, c), s, c); // [B, Cv, n, n]
    fhat = fhat === undefined ? h : add(fhat, h);
    outs.push(nextInput(fhat, c.schedule[s + 1], c));
  }
  return concat(outs, 1);
}

/** Official `embed_to_fhat(all_to_max_scale=True, last_one=True)`: idx [B, L] -> f̂ [B, Cv, n, n]. */
export function fhatFromTokens(idx: Tensor, c: VarConfig): Tensor {
  return range(c.schedule.length).map((s) => scaleResidual(scaleTokens(idx, s, c), s, c)).reduce((a, h) => add(a, h));
}

/** The tokens of scale s: idx [B, L] -> [B, pn²]. */
export function scaleTokens(idx: Tensor, s: number, c: VarConfig): Tensor {
  const start = tokensBefore(c, s), pn = c.schedule[s];
  return slice(idx, 1, start, start + pn * pn);
}

/** cond = class_emb[labels]: [B, C] (row `classes` is the unconditional class). */
export function classEmbedding(labels: Tensor, c: VarConfig): Tensor {
  return gather(param("class_emb.weight", [c.classes + 1, c.width]), labels);
}

/** The start token: cond + pos_start, [B, 1, C]. */
export function startToken(cond: Tensor, c: VarConfig): Tensor {
  return add(reshape(cond, [B, 1, c.width]), param("pos_start", [1, 1, c.width]));
}

/** word_embed: [B, T, Cv] -> [B, T, C]. */
export function wordEmbed(x: Tensor, c: VarConfig): Tensor {
  return linear(x, param("word_embed.weight", [c.width, c.cvae]), param("word_embed.bias", [c.width]));
}

/** lvl_embed[level(t)] + pos_1LC[t] for tokens [start, end): [end - start, C] (or [1, L, C] for all). */
export function levelPosition(c: VarConfig, start: number, end: number): Tensor {
  const lvl = gather(param("lvl_embed.weight", [c.schedule.length, c.width]), levelIds(c.schedule)); // [L, C]
  const lvlPos = add(lvl, param("pos_1LC", [1, c.tokens, c.width])); // [1, L, C]
  return start === 0 && end === c.tokens ? lvlPos : slice(lvlPos, 1, start, end);
}

/** The AdaLN modulations of a class embedding: each block's [B, 1, 6, C] and the head's [B, 1, 2, C]. */
export interface Modulations {
  readonly blocks: readonly Tensor[];
  readonly head: Tensor;
}

/** Modulations from cond [B, C]: per block its own ada_lin, or the shared one plus the block's ada_gss. */
export function modulations(cond: Tensor, c: VarConfig): Modulations {
  const C = c.width, shared = c.sharedAdaLN ? adaLN(cond, "shared_ada_lin.1", C, 6) : undefined;
  const blocks = range(c.depth).map((i) =>
    shared === undefined
      ? adaLN(cond, `blocks.${i}.ada_lin.1`, C, 6)
      : add(shared, param(`blocks.${i}.ada_gss`, [1, 1, 6, C]))
  );
  return { blocks, head: adaLN(cond, "head_nm.ada_lin.1", C, 2) };
}

/** Modulations handed on by the previous generation step (inputs `ada_i` and `ada_head`). */
export function carriedModulations(c: VarConfig): Modulations {
  const blocks = range(c.depth).map((i) => input(`ada_${i}`, [B, 1, 6, c.width]));
  return { blocks, head: input("ada_head", [B, 1, 2, c.width]) };
}

/** The block stack and the head: x [B, T, C] -> logits [B, T, V]. */
export function transformer(x: Tensor, mods: Modulations, c: VarConfig, ffn: Ffn, attend: Attend, T: number): Tensor {
  let h = x;
  for (let i = 0; i < c.depth; i++) h = adaLNBlock(h, mods.blocks[i], i, c, ffn, attend, T);
  return head(h, mods.head, c);
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

/** LN(x)·(1 + s) + b, LayerNorm without affine. */
export function modulate(x: Tensor, s: Tensor, b: Tensor, eps: number): Tensor {
  const h = layerNorm(x, eps);
  return add(add(h, mul(h, s)), b);
}

/**
 * AdaLN self-attention block i: x [B, T, C] -> [B, T, C], modulated by m [B, 1, 6, C] (chunks:
 * gamma1, gamma2, scale1, scale2, shift1, shift2).
 */
export function adaLNBlock(x: Tensor, m: Tensor, i: number, c: VarConfig, ffn: Ffn, attend: Attend, T: number): Tensor {
  const p = `blocks.${i}`, C = c.width;
  const [g1, g2, s1, s2, b1, b2] = range(6).map((j) => chunk(m, j, C));
  const a = selfAttention(tag(modulate(x, s1, b1, c.normEps), `${p}.attn.x_in`), i, c, attend, T);
  const h = add(x, mul(g1, a));
  return add(h, mul(g2, ffn(modulate(h, s2, b2, c.normEps), `${p}.ffn`, c)));
}

/** [B, T, C] -> [B, H, T, D] (head h = channels hD..hD+D-1). */
export function splitHeads(x: Tensor, c: VarConfig, T: number): Tensor {
  return permute(reshape(x, [B, T, c.heads, c.headDim]), [0, 2, 1, 3]);
}

/** [B, H, T, D] -> [B, T, C]. */
export function mergeHeads(x: Tensor, c: VarConfig, T: number): Tensor {
  return reshape(permute(x, [0, 2, 1, 3]), [B, T, c.width]);
}

/** Official SelfAttention: q/k L2-normalised per head, q scaled by τ_h = exp(min(scale_mul_h, ln 100)), softmax scale 1. */
export function selfAttention(x: Tensor, i: number, c: VarConfig, attend: Attend, T: number): Tensor {
  const p = `blocks.${i}.attn`, C = c.width;
  // the official packed bias [q_bias | 0 | v_bias] (the k bias is a zero buffer), added by the GEMM
  const qBias = param(`${p}.q_bias`, [C]);
  const bias = concat([qBias, scale(qBias, 0), param(`${p}.v_bias`, [C])], 0); // [3C]
  const qkv = linear(x, param(`${p}.mat_qkv.weight`, [3 * C, C]), bias); // [B, T, 3C], packed [q | k | v]
  const tau = exp(clampMax(param(`${p}.scale_mul_1H11`, [1, c.heads, 1, 1]), logTauMax(c))); // [1, H, 1, 1]
  const q = slice(qkv, 2, 0, C);
  const k = slice(qkv, 2, C, 2 * C);
  const v = slice(qkv, 2, 2 * C, 3 * C);
  const qh = tag(mul(l2Normalize(splitHeads(q, c, T), 1e-12), tau), `${p}.q`); // [B, H, T, D]
  const kh = tag(l2Normalize(splitHeads(k, c, T), 1e-12), `${p}.k`);
  const vh = tag(splitHeads(v, c, T), `${p}.v`);
  const o = tag(mergeHeads(attend(qh, kh, vh, i), c, T), `${p}.o`); // [B, T, C]
  return tag(linear(o, param(`${p}.proj.weight`, [C, C]), param(`${p}.proj.bias`, [C])), `${p}.out`);
}

/** ln(tauMax), as the official float32 constant torch.log(torch.tensor(100.)) for the default. */
export function logTauMax(c: VarConfig): number {
  return c.tauMax === 100 ? 4.605170249938965 : Math.log(c.tauMax);
}

/** Official FFN: fc2(gelu_tanh(fc1(x))). */
export function tanhGeluFfn(x: Tensor, p: string, c: VarConfig): Tensor {
  const fc1 = linear(x, param(`${p}.fc1.weight`, [c.ffnHidden, c.width]), param(`${p}.fc1.bias`, [c.ffnHidden]));
  return linear(geluTanh(fc1), param(`${p}.fc2.weight`, [c.width, c.ffnHidden]), param(`${p}.fc2.bias`, [c.width]));
}

/** AdaLN before the head (m [B, 1, 2, C]: scale, shift), then the vocabulary projection: [B, T, C] -> [B, T, V]. */
export function head(x: Tensor, m: Tensor, c: VarConfig): Tensor {
  const h = modulate(x, chunk(m, 0, c.width), chunk(m, 1, c.width), c.normEps);
  return linear(h, param("head.weight", [c.vocab, c.width]), param("head.bias", [c.vocab]));
}
