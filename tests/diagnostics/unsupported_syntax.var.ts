/** A `while` loop: not part of the spec language. */
import { B, input, model, silu, type Tensor } from "../../compiler/dsl/lang.ts";

export function repeat(x: Tensor, n: number): Tensor {
  let y = x;
  let i = 0;
  // expect-error 3 unsupported-syntax: Specs cannot use WhileStatement here
  while (i < n) {
    y = silu(y);
    i++;
  }
  return y;
}

export default model({ name: "unsupported_syntax", outputs: { y: repeat(input("x", [B, 4]), 3) } });
