/** Endless recursion whose arguments call a builtin: the limit must still name the recursive function. */
import { B, input, model, silu, type Tensor } from "../../compiler/dsl/lang.ts";

export function deep(x: Tensor): Tensor {
  // expect-error 10 recursion-limit: (is "deep" recursive?)
  return deep(silu(x));
}

export default model({ name: "recursion_through_builtin", outputs: { y: deep(input("x", [B, 4])) } });
