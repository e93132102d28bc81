/** Official VAR-d20 (256 px): depth 20, width 1280, 20 heads of 64, per-block AdaLN. */
import { varModel } from "../compiler/dsl/lib/var.ts";

export default varModel({
  name: "var_d20",
  depth: 20,
  width: 1280,
  heads: 20,
  schedule: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16],
});
