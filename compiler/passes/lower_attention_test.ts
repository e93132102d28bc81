/**
 * @file Pass "lower-attention" on one attention block (1 head, D = Dv = 2, q and k L2-normalised, so
 * β = s exactly) over the schedule [1, 2, 4, 8] (85 tokens), with its copies in two generation steps.
 * Oracles, by hand: the smallest Chebyshev degree whose analytic bound 2(β/2)^{g+1}e^{2β}/(g+1)! is
 * ≤ ε; rank C(D + g, g); flops exact 2·pairs·(D + Dv), low-rank 2(Tq + Tk)·r·(Dv + 2); the decision
 * and its reason; forced modes; and, in steps, the low-rank state that replaces the KV cache.
 */
import assert from "node:assert/strict";
import type { IrModule, Node } from "../ir/node.ts";
import { type LowRankPlan, Op, type OpParams } from "../ir/ops.ts";
import type { CompileOptions } from "../options.ts";
import { LANG, lowerBefore, outputNode, runPass } from "../../tests/_passes.ts";
import { attentionFlops, lowerAttention, visiblePairs } from "./lower_attention.ts";

/** The block at logit scale s in `forward`, in step 0 (no cache yet) and in step 2 (a cache of 5 keys). */
function spec(s: number, normalised = true): string {
  const unit = normalised ? "l2Normalize(input(name, [B, 1, t, 2]), 1e-12)" : "input(name, [B, 1, t, 2])";
  return `import { B, attention, blockCausal, concat, input, l2Normalize, model, noMask, tag } from "${LANG}";
const unit = (name: string, t: number) => ${unit};
const at = { scale: ${s}, mask: noMask() };
const y = attention(tag(unit("q", 85), "blk.q"), unit("k", 85), input("v", [B, 1, 85, 2]), {
  scale: ${s},
  mask: blockCausal([1, 2, 4, 8]),
});
const k0 = unit("k0", 1), v0 = input("v0", [B, 1, 1, 2]);
const o0 = attention(tag(unit("q0", 1), "blk.q"), k0, v0, at);
const k2 = concat([input("k_0", [B, 1, 5, 2]), unit("k2", 16)], 2);
const v2 = concat([input("v_0", [B, 1, 5, 2]), input("v2", [B, 1, 16, 2])], 2);
const o2 = attention(tag(unit("q2", 16), "blk.q"), k2, v2, at);
export default model({
  name: "steps",
  entries: { forward: { y }, step_0: { o: o0, k_0: k0, v_0: v0 }, step_2: { o: o2, k_0: k2, v_0: v2 } },
});
`;
}

function lowered(s: number, options: Partial<CompileOptions> = {}, normalised = true) {
  return runPass(lowerAttention, lowerBefore(spec(s, normalised), "lower-attention", options), options);
}

/** The smallest degree whose Chebyshev analytic bound on [−β, β] is ≤ ε. */
function chebyshevDegree(beta: number, eps: number): number {
  let factorial = 1;
  for (let g = 0;; g++) {
    factorial *= g + 1;
    if (2 * (beta / 2) ** (g + 1) * Math.exp(2 * beta) / factorial <= eps) return g;
  }
}

const binomial = (n: number, k: number): number => (k === 0 ? 1 : (binomial(n - 1, k - 1) * n) / k);
const params = <O extends Op>(n: Node, op: O) => {
  assert.equal(n.op, op);
  return n.params as OpParams[O];
};

// Block-causal pairs over [1, 2, 4, 8]: 1·1 + 4·5 + 16·21 + 64·85 = 5797.
const PAIRS = 5797;

Deno.test("lower-attention: the cost model's key pairs and flops for block-causal and windowed schedules", () => {
  const mask = { kind: "block_causal", schedule: [1, 2, 4, 8] } as const;
  assert.equal(visiblePairs(mask, 85, 85), PAIRS);
  // A window of 2: each scale sees itself and the scale before.
  assert.equal(
    visiblePairs({ kind: "scale_window", schedule: [1, 2, 4, 8], window: 2 }, 85, 85),
    1 + 20 + 16 * 20 + 64 * 80,
  );
  assert.deepEqual(attentionFlops(mask, 85, 85, 2, 2, 21), { exact: 2 * PAIRS * 4, lowrank: 2 * 170 * 21 * 4 });
});

Deno.test("lower-attention: β = 1 lowers to low-rank, degree and rank by the analytic bound, as it is cheaper", () => {
  const { module, diagnostics } = lowered(1);
  assert.deepEqual(diagnostics, []);
  const p = params(outputNode(module, "forward", "y"), Op.LowRankAttention);
  const g = chebyshevDegree(1, 1e-3);
  assert.equal(g, 5); // 2·2⁻⁵e²/5! = 3.8e-3 > ε ≥ 2·2⁻⁶e²/6! = 3.2e-4
  assert.deepEqual([p.plan.family, p.plan.degree, p.plan.rank, p.plan.beta, p.plan.eps], ["chebyshev", 5, 21, 1, 1e-3]);
  assert.ok(p.plan.relError <= 1e-3, `bound ${p.plan.relError}`);
  assert.equal(p.bound.source, "static-exact");
  const exact = 2 * PAIRS * 4, lowrank = 2 * 170 * 21 * 4; // 46376 vs 28560
  assert.match(
    p.reason,
    new RegExp(`^low-rank is ${(exact / lowrank).toFixed(1)}× cheaper: degree 5, rank C\\(2\\+5, 5\\) = 21`),
  );
});

Deno.test("lower-attention: β = 4 stays exact, the low-rank kernel costing more, with the numbers", () => {
  const { module } = lowered(4);
  const p = params(outputNode(module, "forward", "y"), Op.ExactAttention);
  const g = chebyshevDegree(4, 1e-3), r = binomial(2 + g, g);
  assert.ok(2 * 170 * r * 4 >= 2 * PAIRS * 4, `rank ${r} should cost more`);
  assert.match(p.reason, new RegExp(`^low-rank costs more: degree ${g}, rank C\\(2\\+${g}, ${g}\\) = ${r};`));
});

Deno.test("lower-attention: forced modes; an unbounded block is exact in auto, an error when forced low-rank", () => {
  const exact = lowered(1, { attention: "exact" }).module;
  for (const [entry, out] of [["forward", "y"], ["step_0", "o"], ["step_2", "o"]]) {
    assert.equal(params(outputNode(exact, entry!, out!), Op.ExactAttention).reason, "forced by --attention exact");
  }
  assert.deepEqual(Object.keys(exact.entries.step_2!), ["o", "k_0", "v_0"], "exact steps keep the KV cache");
  const forced = params(outputNode(lowered(4, { attention: "lowrank" }).module, "forward", "y"), Op.LowRankAttention);
  assert.match(forced.reason, /^forced by --attention lowrank \(degree \d+/);
  const unbounded = lowered(1, {}, false);
  assert.deepEqual(unbounded.diagnostics, []);
  const none = params(outputNode(unbounded.module, "forward", "y"), Op.ExactAttention);
  assert.match(none.reason, /^no bound on the logits \(no bound on ‖q‖ or ‖k‖/);
  const impossible = lowered(1, { attention: "lowrank" }, false).diagnostics;
  assert.ok(impossible.length > 0 && impossible.every((d) => d.id === "lowrank-impossible"));
  assert.match(impossible[0]!.message, /^Cannot lower this attention to low-rank: no bound on the logits/);
});

Deno.test("lower-attention: a --degree that misses ε on [−β, β] keeps the block exact", () => {
  const p = params(outputNode(lowered(1, { degree: 2 }).module, "forward", "y"), Op.ExactAttention);
  // Chebyshev degree 2 on [−1, 1]: 2·2⁻³e²/3! = 0.31 > 1e-3.
  assert.match(p.reason, /^--degree 2 misses ε = 0\.001 on \[−β, β\] \(bound /);
});

Deno.test("lower-attention: steps carry the state S = Σ φ_k(k)[v, 1] instead of the KV cache", () => {
  const { module } = lowered(1);
  const plan: LowRankPlan = params(outputNode(module, "forward", "y"), Op.LowRankAttention).plan;
  const inputName = (
    m: IrModule,
    id: number,
  ) => (m.nodes[id]!.op === Op.Input ? (m.nodes[id]!.params as { name: string }).name : "");
  for (const [entry, cached] of [["step_0", false], ["step_2", true]] as const) {
    // The step's copy shares the forward block's decision (grouped by the q label), though alone,
    // over 1 or 16 queries, the cost model would keep it exact.
    assert.deepEqual(Object.keys(module.entries[entry]!), ["o", "s_0"], entry);
    const state = outputNode(module, entry, "s_0");
    const sp = params(state, Op.LowRankState);
    assert.deepEqual([sp.plan, sp.keyNorm, sp.stateName, sp.scale], [plan, 1, "s_0", 1]);
    assert.deepEqual(state.type, { dtype: "f32", shape: ["B", 1, 21, 3] }, "[B, H, r, Dv + 1]");
    const [k, v, previous] = state.inputs;
    assert.equal(module.nodes[k!]!.op, Op.L2Normalize, "the new keys, not the concatenated cache");
    assert.equal(inputName(module, v!), entry === "step_0" ? "v0" : "v2");
    if (cached) {
      assert.equal(inputName(module, previous!), "s_0");
      assert.deepEqual(module.nodes[previous!]!.type, state.type);
    } else assert.equal(state.inputs.length, 2, "the first scale starts the state");
    const read = outputNode(module, entry, "o");
    assert.deepEqual(params(read, Op.LowRankRead), { scale: 1, plan, keyNorm: 1 });
    assert.equal(read.inputs[1], state.id);
    assert.ok(read.inputs.every((i) => i < read.id) && state.inputs.every((i) => i < state.id), "topological order");
  }
});
