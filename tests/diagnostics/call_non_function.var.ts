/** Calls a number as if it were an op. */
// @ts-nocheck: a number is not callable
import { B, input, model } from "../../compiler/dsl/lang.ts";

export const gain = 3;

export default model({
  name: "call_non_function",
  // expect-error 17 unknown-op: Cannot call number 3 ("gain")
  outputs: { y: gain(input("x", [B, 4])) },
});
