/** A function that calls itself without end. */
import { B, input, model, type Tensor } from "../../compiler/dsl/lang.ts";

export function deep(x: Tensor, n: number): Tensor {
  // expect-error 10 recursion-limit: Calls nest deeper than 200 (is "deep" recursive?)
  return deep(x, n + 1);
}

export default model({ name: "recursion", outputs: { y: deep(input("x", [B, 4]), 0) } });
