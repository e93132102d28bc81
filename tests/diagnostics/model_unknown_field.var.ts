/** A misspelt field of model() is an error with a suggestion, not silently ignored. */
// @ts-nocheck: metta is a typo
import { B, input, model, silu } from "../../compiler/dsl/lang.ts";

export default model({
  name: "model_unknown_field",
  outputs: { y: silu(input("x", [B, 4])) },
  // expect-error 3 unknown-field: Unknown field "metta" of "model"
  metta: { family: "toy" },
});
