/** Official VAR-d16 (256 px): depth 16, width 1024, 16 heads of 64, per-block AdaLN. */
import { varModel } from "../compiler/dsl/lib/var.ts";

export default varModel({
  name: "var_d16",
  depth: 16,
  width: 1024,
  heads: 16,
  schedule: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16],
});
