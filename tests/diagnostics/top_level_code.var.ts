/** Statements that would run code when the module loads. */
import { B, input, model, silu } from "../../compiler/dsl/lang.ts";

// expect-error 1 top-level-code: Cannot run code at the top level of a spec (ExpressionStatement)
Deno.writeTextFileSync("pwned.txt", "x");

// expect-error 1 top-level-code: Cannot run code at the top level of a spec (ForStatement)
for (let i = 0; i < 3; i++) console.log(i);

export default model({ name: "top_level_code", outputs: { y: silu(input("x", [B, 4])) } });
