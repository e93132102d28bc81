/** A model name that would break out of a string in generated JS. */
import { varModel } from "../../compiler/dsl/lib/var.ts";

export default varModel({
  // expect-error 3 unsafe-name: is not a safe identifier
  name: 'x"; alert(1); //',
  depth: 2,
  width: 64,
  heads: 2,
  schedule: [1, 2, 4],
});
