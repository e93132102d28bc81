/** A checkpoint name with characters that are not allowed. */
import { B, input, linear, model, param } from "../../compiler/dsl/lang.ts";

export const x = input("x", [B, 4]);
// expect-error 24 unsafe-name: Cannot use "w[0]; drop" as a checkpoint tensor name
export const w = param("w[0]; drop", [4, 4]);

export default model({ name: "unsafe_param_name", outputs: { y: linear(x, w) } });
