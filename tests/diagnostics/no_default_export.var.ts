// expect-error 1:1 no-default-export: The spec must end with "export default model(...)"
/** Builds a model but never exports it. */
import { B, input, model, silu } from "../../compiler/dsl/lang.ts";

export const m = model({ name: "no_default_export", outputs: { y: silu(input("x", [B, 4])) } });
