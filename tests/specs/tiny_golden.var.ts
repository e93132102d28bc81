/** A minimal VAR for golden IR tests: one block, width 8, two heads, two scales. */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  name: "tiny_golden",
  depth: 1,
  width: 8,
  heads: 2,
  classes: 2,
  vocab: 4,
  cvae: 2,
  schedule: [1, 2],
});
