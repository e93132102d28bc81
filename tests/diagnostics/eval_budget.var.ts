/** A loop without a bound: reading the spec stops at the step budget. */
import { B, input, model, type Tensor } from "../../compiler/dsl/lang.ts";

export const x = input("x", [B, 4]);

export function spin(t: Tensor): Tensor {
  // expect-error 12 eval-budget: Reading the spec took more than
  for (;;) t;
}

export default model({ name: "eval_budget", outputs: { y: spin(x) } });
