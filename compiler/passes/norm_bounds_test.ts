/**
 * @file Pass "norm-bounds" on one attention node (2 heads, head dim 4), each bound source worked out
 * by hand: static-exact β_h = s·τ_h (τ from the spec's clamp, or read from the checkpoint), the
 * propagated s·‖q‖·‖k‖ through LayerNorm and a linear layer whose weights are given, "none" without
 * them, and calibrated norms (used only when tighter than a static bound).
 */
import assert from "node:assert/strict";
import type { IrModule } from "../ir/node.ts";
import { type AttentionBound, Op, type OpParams } from "../ir/ops.ts";
import type { CompileOptions } from "../options.ts";
import { LANG, lowerBefore, runPass } from "../../tests/_passes.ts";
import { normBounds } from "./norm_bounds.ts";

const LN100 = 4.605170185988092; // ln 100, VAR's clamp of the log temperature

/** q = l2(q0)·τ with τ = exp(min(scale_mul, ln 100)) of shape [1, H, 1, 1], k = l2(k0). */
const EXACT =
  `import { B, attention, clampMax, exp, input, l2Normalize, model, mul, noMask, param, tag } from "${LANG}";
const tau = exp(clampMax(param("scale_mul", [1, 2, 1, 1]), ${LN100}));
const q = tag(mul(l2Normalize(input("q", [B, 2, 3, 4]), 1e-12), tau), "blk.q");
const k = l2Normalize(input("k", [B, 2, 3, 4]), 1e-12);
const o = attention(q, k, input("v", [B, 2, 3, 4]), { scale: 0.5, mask: noMask() });
export default model({ name: "exact", outputs: { o } });
`;

/** q = layerNorm(x)·Wqᵀ, k = layerNorm(y): ‖q‖ ≤ ‖Wq‖₂·√4 and ‖k‖ ≤ √4 = 2. */
const LINEAR = `import { B, attention, input, layerNorm, linear, model, noMask, param, tag } from "${LANG}";
const q = tag(linear(layerNorm(input("x", [B, 2, 3, 4]), 1e-6), param("wq", [4, 4])), "blk.q");
const k = layerNorm(input("y", [B, 2, 3, 4]), 1e-6);
const o = attention(q, k, input("v", [B, 2, 3, 4]), { scale: 0.125, mask: noMask() });
export default model({ name: "linear", outputs: { o } });
`;

/** The bound norm-bounds gives the one attention node of `text`. */
function boundOf(text: string, options: Partial<CompileOptions> = {}): AttentionBound {
  const before: IrModule = lowerBefore(text, "norm-bounds", options);
  const { module, diagnostics } = runPass(normBounds, before, options);
  assert.deepEqual(diagnostics, []);
  const attention = module.nodes.filter((n) => n.op === Op.Attention);
  assert.equal(attention.length, 1);
  // Only the attention node changes, and only by its bound.
  module.nodes.forEach((n, i) => {
    if (n.op !== Op.Attention) assert.equal(n, before.nodes[i]);
  });
  return (attention[0]!.params as OpParams[Op.Attention]).bound!;
}

/** Checkpoint tensors by name, as `--var` gives them. */
function weights(tensors: Record<string, number[]>): CompileOptions["weights"] {
  return (name) => (tensors[name] ? Float32Array.from(tensors[name]) : undefined);
}

const I2 = [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2]; // 2·I₄: ‖W‖₂ = 2, ‖W‖_F = 4

Deno.test("norm-bounds: static-exact without a checkpoint, β_h = s·τ_max from the spec's clamp", () => {
  const b = boundOf(EXACT);
  assert.equal(b.source, "static-exact");
  const beta = 0.5 * Math.exp(LN100); // s · e^{ln 100} = 50
  assert.ok(Math.abs(b.betaPerHead[0]! - 50) < 1e-12);
  assert.deepEqual(b.betaPerHead, [beta, beta]);
  assert.equal(b.kNorm, 1);
  assert.match(b.how, /τ ≤ 100 from the spec's clamp/);
});

Deno.test("norm-bounds: static-exact with a checkpoint, β_h = s·τ_h with τ_h read from it per head", () => {
  const b = boundOf(EXACT, { weights: weights({ scale_mul: [Math.log(2), Math.log(3)] }) });
  assert.equal(b.source, "static-exact");
  // τ = exp(ln 2), exp(ln 3) of the float32 values: 2 and 3 within float32 rounding of the logs.
  assert.ok(Math.abs(b.betaPerHead[0]! - 0.5 * 2) < 1e-6 && Math.abs(b.betaPerHead[1]! - 0.5 * 3) < 1e-6);
  assert.match(b.how, /τ_h read from the checkpoint/);
});

Deno.test("norm-bounds: propagated through LayerNorm and a given linear weight, by min(‖W‖_F, √(‖W‖₁‖W‖∞))", () => {
  const b = boundOf(LINEAR, { weights: weights({ wq: I2 }) });
  assert.equal(b.source, "static-propagated");
  // ‖W‖₂ ≤ min(4, √(2·2)) = 2; ‖q‖ ≤ 2·√4 = 4, ‖k‖ ≤ √4 = 2; β = 0.125·4·2 = 1 (‖W‖_F alone would give 2).
  assert.deepEqual([b.qNorm, b.kNorm], [4, 2]);
  assert.deepEqual(b.betaPerHead, [1, 1]);
  assert.deepEqual([b.qAbsMax, b.kAbsMax], [4, Math.sqrt(3)]); // rows of W: ‖w_i‖·‖x‖; LayerNorm: √(C − 1)
  assert.equal(b.vAbsMax, Infinity, "v is a run-time input");
});

Deno.test('norm-bounds: "none", β = ∞ per head, when a linear weight is not known', () => {
  const b = boundOf(LINEAR);
  assert.equal(b.source, "none");
  assert.deepEqual(b.betaPerHead, [Infinity, Infinity]);
  assert.match(b.how, /no bound on ‖q‖ or ‖k‖/);
});

Deno.test("norm-bounds: calibrated norms give β_h = s·‖q‖_h·‖k‖_h, unless a static bound is tighter", () => {
  const calibration = { "blk.q": { q: [2, 3], k: [1, 0.5] } };
  const b = boundOf(LINEAR, { calibration });
  assert.equal(b.source, "calibrated");
  assert.deepEqual(b.betaPerHead, [0.125 * 2 * 1, 0.125 * 3 * 0.5]);
  assert.match(b.how, /measured by --calibrate on "blk\.q"/);
  // With the weight known the static β is 1: a looser calibration (β = 12.5) does not replace it.
  const loose = boundOf(LINEAR, {
    weights: weights({ wq: I2 }),
    calibration: { "blk.q": { q: [100, 100], k: [1, 1] } },
  });
  assert.equal(loose.source, "static-propagated");
  const tight = boundOf(LINEAR, { weights: weights({ wq: I2 }), calibration });
  assert.equal(tight.source, "calibrated");
});
