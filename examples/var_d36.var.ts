/** Official VAR-d36 (512 px): depth 36, width 2304, 36 heads of 64, shared AdaLN, 512-px schedule. */
import { varModel } from "../compiler/dsl/lib/var.ts";

export default varModel({
  name: "var_d36",
  depth: 36,
  width: 2304,
  heads: 36,
  sharedAdaLN: true,
  schedule: [1, 2, 3, 4, 6, 9, 13, 18, 24, 32],
});
