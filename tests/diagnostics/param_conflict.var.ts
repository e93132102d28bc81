/** The same checkpoint tensor declared with two shapes. */
import { add, B, input, linear, model, param } from "../../compiler/dsl/lang.ts";

export const x = input("x", [B, 4]);
export const h = add(x, param("shift", [4]));
// expect-error 28 param-conflict: Checkpoint tensor "shift" is declared as [1,4] here and as [4] before
export const y = linear(h, param("shift", [1, 4]));

export default model({ name: "param_conflict", outputs: { y } });
