/** A hand-written MLP whose second weight does not match the first one's output width. */
import { B, geluTanh, input, linear, model, param, type Tensor } from "../../compiler/dsl/lang.ts";

function mlp(x: Tensor): Tensor {
  const h = geluTanh(linear(x, param("fc1.weight", [32, 16]), param("fc1.bias", [32])));
  // expect-error 10 shape-mismatch: input width is 32, weight expects 24
  return linear(h, param("fc2.weight", [16, 24]));
}

export default model({ name: "shape_mismatch", outputs: { y: mlp(input("x", [B, 16])) } });
