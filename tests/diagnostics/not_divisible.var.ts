/** A width that cannot be split into the requested number of heads, and a fractional FFN width. */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  name: "not_divisible",
  depth: 2,
  width: 100,
  // expect-error 3 not-divisible: Cannot split width 100 into 3 heads
  heads: 3,
  // expect-error 3 not-divisible: FFN width 100 × mlpRatio 0.125 = 12.5 is not an integer
  mlpRatio: 0.125,
  schedule: [1, 2, 4],
});
