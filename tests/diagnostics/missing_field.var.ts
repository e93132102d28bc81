/** Leaves out the required `depth`. */
// @ts-nocheck: depth is missing on purpose
import { varModel } from "../../compiler/dsl/lib/var.ts";

// expect-error 25 missing-field: Missing required VAR option "depth"
export default varModel({
  name: "missing_field",
  width: 64,
  heads: 2,
  schedule: [1, 2, 4],
});
