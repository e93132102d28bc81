/**
 * A VAR variant written by rearranging DSL blocks: attention limited to the current and the
 * previous scale (a "Markovian" successor of VAR), a SiLU feed-forward, head dim 16.
 */
import { type Ffn, varModel } from "../../compiler/dsl/lib/var.ts";
import { linear, param, silu } from "../../compiler/dsl/lang.ts";

const siluFfn: Ffn = (x, p, c) => {
  const h = silu(linear(x, param(`${p}.fc1.weight`, [c.ffnHidden, c.width]), param(`${p}.fc1.bias`, [c.ffnHidden])));
  return linear(h, param(`${p}.fc2.weight`, [c.width, c.ffnHidden]), param(`${p}.fc2.bias`, [c.width]));
};

export default varModel({
  name: "markov",
  depth: 2,
  width: 32,
  heads: 2,
  classes: 3,
  vocab: 16,
  cvae: 4,
  mlpRatio: 2,
  schedule: [1, 2, 3, 4],
  ffn: siluFfn,
  window: 2,
  vaeCh: 32,
  vaeChMult: [1, 2],
  vaeResBlocks: 1,
});
