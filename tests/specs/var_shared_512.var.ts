/**
 * A small shared-AdaLN VAR on the 512-px schedule with non-default vocab, Cvae and class count,
 * and a two-level VQ-VAE decoder (64-px images) so that decoding stays cheap in tests.
 */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  name: "var_shared_512",
  depth: 2,
  width: 64,
  heads: 2,
  classes: 5,
  vocab: 32,
  cvae: 4,
  sharedAdaLN: true,
  schedule: [1, 2, 3, 4, 6, 9, 13, 18, 24, 32],
  vaeCh: 32,
  vaeChMult: [1, 2],
  vaeResBlocks: 1,
});
