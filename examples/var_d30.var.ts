/** Official VAR-d30 (256 px): depth 30, width 1920, 30 heads of 64, per-block AdaLN. */
import { varModel } from "../compiler/dsl/lib/var.ts";

export default varModel({
  name: "var_d30",
  depth: 30,
  width: 1920,
  heads: 30,
  schedule: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16],
});
