/** A negative dimension in an input shape. */
import { B, input, model, silu } from "../../compiler/dsl/lang.ts";

export default model({
  name: "negative_dim",
  // expect-error 33 bad-size: Dimension 1 of "input" must be a positive integer or B, got number -4
  outputs: { y: silu(input("x", [B, -4])) },
});
