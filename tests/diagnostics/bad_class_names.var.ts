/** Class names that do not match the class count. */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  name: "bad_class_names",
  depth: 2,
  width: 64,
  heads: 1,
  classes: 4,
  // expect-error 3 bad-field: "classNames" names 3 classes, but the model has 4
  classNames: "abc",
  schedule: [1, 2, 4],
});
