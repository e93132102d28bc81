/** Imports an op that lang.ts does not export. */
// @ts-nocheck: softmax is not exported
// expect-error 27 unknown-name: Module "../../compiler/dsl/lang.ts" has no export "softmax"
import { B, input, model, softmax } from "../../compiler/dsl/lang.ts";

export default model({ name: "unknown_import", outputs: { y: softmax(input("x", [B, 4])) } });
