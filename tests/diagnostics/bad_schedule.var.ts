/** A schedule that does not grow coarse to fine. */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  name: "bad_schedule",
  depth: 2,
  width: 64,
  heads: 2,
  // expect-error 3 bad-schedule: scale 3 has side 2 after 4
  schedule: [1, 2, 4, 2, 8],
});
