/** `model` itself rejects a name that is not an identifier. */
import { B, input, model, silu } from "../../compiler/dsl/lang.ts";

export default model({
  // expect-error 3 unsafe-name: Model name must be an identifier
  name: "1bad-name",
  outputs: { y: silu(input("x", [B, 4])) },
});
