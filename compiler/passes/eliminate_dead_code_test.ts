/**
 * @file Pass "eliminate-dead-code": nodes no entry output reaches are dropped (inputs only dead code
 * reads among them); params stay, read or not, since they define the checkpoint; the kept nodes are
 * renumbered densely with their inputs and the entries' outputs following them.
 */
import assert from "node:assert/strict";
import { Op } from "../ir/ops.ts";
import { printModule } from "../ir/print.ts";
import { LANG, lowerBefore, outputNode, runPass } from "../../tests/_passes.ts";
import { eliminateDeadCode } from "./eliminate_dead_code.ts";

const TEXT = `import { B, add, exp, input, model, param, scale, silu } from "${LANG}";
const x = input("x", [B, 4]);
const z = input("z", [B, 4]);
const dead = silu(scale(z, 2));
const unread = param("unread", [3]);
const y = add(exp(x), param("bias", [4]));
const t = scale(x, 3);
export default model({ name: "dce", entries: { forward: { y }, other: { t } } });
`;

Deno.test("eliminate-dead-code: drops what no output reaches, keeps every param, renumbers densely", () => {
  const before = lowerBefore(TEXT, "eliminate-dead-code");
  const { module, diagnostics } = runPass(eliminateDeadCode, before);
  assert.deepEqual(diagnostics, []);
  const ops = (m: typeof module) => m.nodes.map((n) => `${n.op}${n.label ? `#${n.label}` : ""}`);
  assert.equal(before.nodes.length, 9);
  // Dropped: z (read only by dead code), scale(z, 2) and silu. Kept: both params, y's and t's chains.
  assert.deepEqual(ops(module), ["input", "param", "unary", "param", "binary", "scalar"]);
  assert.ok(!module.nodes.some((n) => n.op === Op.Input && (n.params as { name: string }).name === "z"));
  assert.ok(module.nodes.some((n) => n.op === Op.Param && (n.params as { name: string }).name === "unread"));
  const y = outputNode(module, "forward", "y"), t = outputNode(module, "other", "t");
  assert.equal(y.op, Op.Binary);
  assert.deepEqual(y.inputs.map((i) => module.nodes[i]!.op), [Op.Unary, Op.Param]);
  assert.deepEqual([t.op, t.params], [Op.Scalar, { fn: "mul", value: 3 }]);
  assert.deepEqual(t.inputs, [0], "t reads x, renumbered to %0");
  module.nodes.forEach((n, i) => assert.equal(n.id, i));
});

Deno.test("eliminate-dead-code: a module without dead code prints the same after the pass", () => {
  const once = runPass(eliminateDeadCode, lowerBefore(TEXT, "eliminate-dead-code")).module;
  assert.equal(printModule(runPass(eliminateDeadCode, once).module), printModule(once));
});
