/**
 * @file The official VQ-VAE pieces as DSL blocks: the quantizer (codebook, Phi, f̂ accumulation,
 * the next-scale input) and the decoder. Param names are the official state-dict names.
 * Shapes: B batch, Cv = Cvae, n = last scale side, pn = a scale's side.
 * @module
 */
import {
  add,
  attention,
  B,
  clamp,
  conv2d,
  gather,
  groupNorm,
  interpolate,
  noMask,
  param,
  permute,
  reshape,
  scale,
  shift,
  silu,
  slice,
  tag,
  type Tensor,
  upsampleNearest,
  type VarConfig,
} from "../lang.ts";

/** A conv2d whose weight and bias come from the VQ-VAE checkpoint under prefix `p`. */
export function vaeConv(x: Tensor, p: string, cin: number, cout: number, k: number): Tensor {
  const w = param(`${p}.weight`, [cout, cin, k, k], "vae");
  return conv2d(x, w, param(`${p}.bias`, [cout], "vae"), (k - 1) / 2);
}

/** Phi_k(h) = 0.5·h + 0.5·conv3x3_k(h) on [B, Cv, n, n]. */
export function phi(h: Tensor, k: number, c: VarConfig): Tensor {
  return add(scale(h, 0.5), scale(vaeConv(h, `quantize.quant_resi.qresi_ls.${k}`, c.cvae, c.cvae, 3), 0.5));
}

/** Codebook rows of the tokens [B, pn²] as a map [B, Cv, pn, pn]. */
export function tokenMap(tokens: Tensor, pn: number, c: VarConfig): Tensor {
  const z = gather(param("quantize.embedding.weight", [c.vocab, c.cvae], "vae"), tokens); // [B, pn², Cv]
  return reshape(permute(z, [0, 2, 1]), [B, c.cvae, pn, pn]);
}

/** Scale s's contribution to f̂: Phi(bicubic(codebook[tokens] → n)); the last scale is already n × n. */
export function scaleResidual(tokens: Tensor, s: number, c: VarConfig): Tensor {
  const pn = c.schedule[s], n = c.schedule[c.schedule.length - 1];
  const z = tokenMap(tokens, pn, c);
  return phi(s === c.schedule.length - 1 ? z : interpolate(z, n, "bicubic"), c.phiIndex[s], c);
}

/** The next scale's input: area(f̂ → pn) flattened to [B, pn², Cv] (channels last). */
export function nextInput(fhat: Tensor, pn: number, c: VarConfig): Tensor {
  return reshape(permute(interpolate(fhat, pn, "area"), [0, 2, 3, 1]), [B, pn * pn, c.cvae]);
}

/** GroupNorm(32, eps 1e-6) with the checkpoint's affine parameters. */
export function norm(x: Tensor, p: string, ch: number): Tensor {
  return groupNorm(x, param(`${p}.weight`, [ch], "vae"), param(`${p}.bias`, [ch], "vae"), 32, 1e-6);
}

/** ResnetBlock: conv(silu(GN(x))) twice, plus x (through a 1×1 conv when the width changes). */
export function resBlock(x: Tensor, p: string, cin: number, cout: number): Tensor {
  const h = vaeConv(silu(norm(x, `${p}.norm1`, cin)), `${p}.conv1`, cin, cout, 3);
  const h2 = vaeConv(silu(norm(h, `${p}.norm2`, cout)), `${p}.conv2`, cout, cout, 3);
  return add(cin === cout ? x : vaeConv(x, `${p}.nin_shortcut`, cin, cout, 1), h2);
}

/** Single-head self-attention over the hw positions of x [B, C, h, w], logits scaled by C^-1/2. */
export function attnBlock(x: Tensor, p: string, ch: number, hw: number): Tensor {
  const qkv = vaeConv(norm(x, `${p}.norm`, ch), `${p}.qkv`, ch, 3 * ch, 1); // [B, 3C, h, w]
  const heads = reshape(qkv, [B, 3, ch, hw * hw]);
  const part = (i: number) =>
    reshape(permute(reshape(slice(heads, 1, i, i + 1), [B, ch, hw * hw]), [0, 2, 1]), [B, 1, hw * hw, ch]);
  const q = tag(part(0), `${p}.q`);
  const o = attention(q, part(1), part(2), { scale: 1 / Math.sqrt(ch), mask: noMask() }); // [B, 1, hw², C]
  const h = reshape(permute(reshape(o, [B, hw * hw, ch]), [0, 2, 1]), [B, ch, hw, hw]);
  return add(x, vaeConv(h, `${p}.proj_out`, ch, ch, 1));
}

/** Official VQVAE.fhat_to_img: decoder(post_quant_conv(f̂)) clamped to [-1, 1]: [B, 3, 16n, 16n] for 5 levels. */
export function decoder(fhat: Tensor, c: VarConfig): Tensor {
  const levels = c.vaeChMult.length;
  let side = c.schedule[c.schedule.length - 1];
  let ch = c.vaeCh * c.vaeChMult[levels - 1];
  let x = vaeConv(vaeConv(fhat, "post_quant_conv", c.cvae, c.cvae, 3), "decoder.conv_in", c.cvae, ch, 3);
  x = resBlock(
    attnBlock(resBlock(x, "decoder.mid.block_1", ch, ch), "decoder.mid.attn_1", ch, side),
    "decoder.mid.block_2",
    ch,
    ch,
  );
  for (let i = levels - 1; i >= 0; i--) {
    const out = c.vaeCh * c.vaeChMult[i];
    for (let j = 0; j <= c.vaeResBlocks; j++) {
      x = resBlock(x, `decoder.up.${i}.block.${j}`, ch, out);
      ch = out;
      if (i === levels - 1) x = attnBlock(x, `decoder.up.${i}.attn.${j}`, ch, side);
    }
    if (i !== 0) {
      x = vaeConv(upsampleNearest(x, 2), `decoder.up.${i}.upsample.conv`, ch, ch, 3);
      side = side * 2;
    }
  }
  const img = vaeConv(silu(norm(x, "decoder.norm_out", ch)), "decoder.conv_out", ch, 3, 3);
  return clamp(img, -1, 1);
}

/** Maps an image in [-1, 1] to [0, 1]. */
export function toUnit(img: Tensor): Tensor {
  return scale(shift(img, 1), 0.5);
}
