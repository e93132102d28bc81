/** A loop over a builtin that touches 2^20 elements per call: counted by elements, stopped in seconds. */
import { range } from "../../compiler/dsl/lang.ts";
import { varModel } from "../../compiler/dsl/lib/var.ts";

function hits(): number {
  const big = range(1048576);
  let n = 0;
  for (let i = 0; i < 1000; i++) {
    // expect-error 9 eval-budget: Reading the spec took more than 5000000 steps
    if (big.includes(-1)) n++;
  }
  return n;
}

export default varModel({ name: "hidden_work", depth: 1 + hits(), width: 64, heads: 1, schedule: [1, 2] });
