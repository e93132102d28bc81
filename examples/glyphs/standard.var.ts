/**
 * The shipped glyph VAR, standard regime: trained on 32×32 glyphs of 36 classes (0–9, A–Z), 8×8 token
 * maps. Official architecture: head dim 64, L2-normalised q/k with learned temperatures (clamped at 100).
 * Weights: examples/glyphs/var_standard.safetensors and vae.safetensors; see examples/glyphs/MODEL_CARD.md.
 */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  name: "glyphs_standard",
  depth: 4,
  width: 128,
  heads: 2,
  classes: 36,
  classNames: "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
  vocab: 512,
  cvae: 16,
  schedule: [1, 2, 3, 4, 6, 8],
  vaeCh: 32,
  vaeChMult: [1, 2, 2],
  vaeResBlocks: 1,
});
