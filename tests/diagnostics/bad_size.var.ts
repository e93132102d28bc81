/** A negative size. */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  name: "bad_size",
  depth: 2,
  width: 64,
  heads: 2,
  // expect-error 3 bad-size: VAR option "vocab" must be in [1, 1048576], got -4096
  vocab: -4096,
  schedule: [1, 2, 4],
});
