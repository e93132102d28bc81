/** Fuzzing seed: the smallest VAR preset (one block, two scales, a one-level VQ-VAE). */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  name: "fuzz_small_var",
  depth: 1,
  width: 8,
  heads: 2,
  classes: 2,
  vocab: 4,
  cvae: 2,
  schedule: [1, 2],
  vaeCh: 32,
  vaeChMult: [1],
  vaeResBlocks: 1,
  window: 1,
});
