/** A small model in the bounded-entry regime (head dim 8, τ ≤ 0.5) whose attention lowers to low-rank. */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  name: "paper_small",
  depth: 2,
  width: 32,
  heads: 4,
  classes: 4,
  vocab: 64,
  cvae: 4,
  tauMax: 0.5,
  schedule: [1, 2, 3, 4, 6, 8, 11, 16],
  vaeCh: 32,
  vaeChMult: [1, 2],
  vaeResBlocks: 1,
});
