// deno-lint-ignore-file prefer-const
/** A mutable binding at the top level. */
import { B, input, model, silu } from "../../compiler/dsl/lang.ts";

// expect-error 1 top-level-code: Top-level bindings of a spec must be const
let width = 4;

export default model({ name: "top_level_let", outputs: { y: silu(input("x", [B, width])) } });
