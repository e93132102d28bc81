/** Class names that are not printable characters (they reach terminals and the web page). */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  name: "bad_class_chars",
  depth: 2,
  width: 64,
  heads: 1,
  classes: 2,
  // expect-error 3 bad-field: VAR option "classNames" must be a string of printable ASCII characters
  classNames: "a\n",
  schedule: [1, 2, 4],
});
