/** Official VAR-d24 (256 px): depth 24, width 1536, 24 heads of 64, per-block AdaLN. */
import { varModel } from "../compiler/dsl/lib/var.ts";

export default varModel({
  name: "var_d24",
  depth: 24,
  width: 1536,
  heads: 24,
  schedule: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16],
});
