/** A custom FFN whose output is twice as wide as the block it feeds. */
import { linear, param, type Tensor, type VarConfig } from "../../compiler/dsl/lang.ts";
import { varModel } from "../../compiler/dsl/lib/var.ts";

function wideFfn(x: Tensor, p: string, c: VarConfig): Tensor {
  return linear(x, param(`${p}.fc.weight`, [2 * c.width, c.width]));
}

// expect-error 16 shape-mismatch: [B, 5, 128]
export default varModel({
  name: "custom_ffn_wrong_shape",
  depth: 1,
  width: 64,
  heads: 2,
  vocab: 32,
  cvae: 4,
  classes: 4,
  schedule: [1, 2],
  ffn: wideFfn,
});
