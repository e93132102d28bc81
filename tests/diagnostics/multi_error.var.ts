/** Several bad options in one object: each is reported at its own field. */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  name: "multi_error",
  // expect-error 3 bad-field: VAR option "depth" must be an integer, got number 2.5
  depth: 2.5,
  width: 64,
  heads: 2,
  // expect-error 3 bad-schedule: Scale 1 of "schedule" must be an integer side length in [1, 4096], got number 0
  schedule: [1, 0, 4],
  // expect-error 3 bad-size: VAR option "normEps" must be a positive finite number, got number -1
  normEps: -1,
});
