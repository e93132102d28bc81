// deno-lint-ignore-file no-const-assign
/** Assigns to a const inside a function. */
// @ts-nocheck: assigning to a const is the error under test
import { B, input, model, scale, type Tensor } from "../../compiler/dsl/lang.ts";

export function halve(x: Tensor): Tensor {
  const factor = 1;
  // expect-error 3 bad-operand: Cannot assign to constant "factor"
  factor = 0.5;
  return scale(x, factor);
}

export default model({ name: "assign_const", outputs: { y: halve(input("x", [B, 4])) } });
