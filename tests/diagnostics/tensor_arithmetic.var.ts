/** Uses `+` on tensors instead of `add`. */
// @ts-nocheck: tensors have no + operator
import { B, input, model, param } from "../../compiler/dsl/lang.ts";

export const x = input("x", [B, 4]);
// expect-error 18 bad-operand: Cannot apply "+" to a tensor and a tensor
export const y = x + param("bias", [4]);

export default model({ name: "tensor_arithmetic", outputs: { y } });
