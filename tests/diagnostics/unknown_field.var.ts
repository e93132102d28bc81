/** A typo in an option name: `heds` is unknown and `heads` is then missing. */
// @ts-nocheck: heds is a typo
import { varModel } from "../../compiler/dsl/lib/var.ts";

// expect-error 25 missing-field: Missing required VAR option "heads"
export default varModel({
  name: "unknown_field",
  depth: 2,
  width: 64,
  // expect-error 3 unknown-field: Unknown VAR option "heds"
  heds: 2,
  schedule: [1, 2, 4],
});
