/**
 * A spec with a deliberate mistake, to show varc's diagnostics: 3 heads cannot share a width of 100.
 * `varc compile examples/bad.var.ts --out out/bad` reports where and suggests a fix.
 */
import { varModel } from "../compiler/dsl/lib/var.ts";

export default varModel({
  name: "bad",
  depth: 2,
  width: 100,
  heads: 3,
  classes: 10,
  schedule: [1, 2, 4],
});
