// deno-lint-ignore-file no-redeclare
/** Declares the same name twice in one scope. */
// @ts-nocheck: h is redeclared
import { B, geluTanh, input, model, silu, type Tensor } from "../../compiler/dsl/lang.ts";

export function act(x: Tensor): Tensor {
  const h = silu(x);
  // expect-error 9 duplicate-name: Cannot redeclare "h" in the same scope
  const h = geluTanh(x);
  return h;
}

export default model({ name: "duplicate_name", outputs: { y: act(input("x", [B, 4])) } });
