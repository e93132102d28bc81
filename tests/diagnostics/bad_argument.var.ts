/** Passes a number where a tensor is expected. */
// @ts-nocheck: silu takes a tensor
import { B, geluTanh, input, model, silu } from "../../compiler/dsl/lang.ts";

export const x = input("x", [B, 8]);

export default model({
  name: "bad_argument",
  // expect-error 31 bad-argument: Argument 1 of "silu" must be a tensor, got number 8
  outputs: { y: geluTanh(silu(8)), x },
});
