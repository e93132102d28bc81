/** Calls an op the DSL does not declare. */
// @ts-nocheck: softmax2 is not a DSL op
import { B, input, model, silu } from "../../compiler/dsl/lang.ts";

export const x = input("x", [B, 8]);

export default model({
  name: "unknown_op",
  // expect-error 22 unknown-op: Unknown op "softmax2"
  outputs: { y: silu(softmax2(x)) },
});
