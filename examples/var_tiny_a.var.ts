/** The tiny random-weight VAR of the parity fixture (depth 2, width 128, V 256, Cvae 8, 10 classes). */
import { varModel } from "../compiler/dsl/lib/var.ts";

export default varModel({
  name: "var_tiny_a",
  depth: 2,
  width: 128,
  heads: 2,
  classes: 10,
  vocab: 256,
  cvae: 8,
  vaeCh: 32,
  schedule: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16],
});
