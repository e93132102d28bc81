/**
 * The shipped glyph VAR, bounded-entry regime: the standard glyph model's sizes with head dim 4 and
 * temperatures clamped to τ ≤ 0.5 in training, so every attention logit lies in [−0.5, 0.5] and the compiler
 * reads a static bound from the checkpoint (β = max τ_h) for its low-rank lowering.
 * Weights: examples/glyphs/var_bounded.safetensors and vae.safetensors; see examples/glyphs/MODEL_CARD.md.
 */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  name: "glyphs_bounded",
  depth: 4,
  width: 128,
  heads: 32,
  classes: 36,
  classNames: "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
  vocab: 512,
  cvae: 16,
  tauMax: 0.5,
  schedule: [1, 2, 3, 4, 6, 8],
  vaeCh: 32,
  vaeChMult: [1, 2, 2],
  vaeResBlocks: 1,
});
