/** A custom FFN that passes a size where a tensor is expected; the error points into this file. */
// @ts-nocheck: geluTanh takes a tensor
import { geluTanh, linear, param, type Tensor, type VarConfig } from "../../compiler/dsl/lang.ts";
import { varModel } from "../../compiler/dsl/lib/var.ts";

export function badFfn(_x: Tensor, p: string, c: VarConfig): Tensor {
  // expect-error 22 bad-argument: Argument 1 of "geluTanh" must be a tensor, got number 64
  const h = geluTanh(c.width);
  return linear(h, param(`${p}.fc.weight`, [c.width, c.width]));
}

export default varModel({
  name: "custom_ffn_bad_argument",
  depth: 1,
  width: 64,
  heads: 2,
  vocab: 32,
  cvae: 4,
  classes: 4,
  schedule: [1, 2],
  ffn: badFfn,
});
