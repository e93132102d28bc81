/** Refers to a name that is declared nowhere (a typo of `width`). */
// @ts-nocheck: widht is a typo
import { B, input, linear, model, param } from "../../compiler/dsl/lang.ts";

const width = 16;

function proj(x) {
  // expect-error 39 unknown-name: Unknown name "widht"
  return linear(x, param("w", [width, widht]));
}

export default model({ name: "unknown_name", outputs: { y: proj(input("x", [B, width])) } });
