/** @file The official presets compile and their parameter counts equal the official ones exactly. */
import assert from "node:assert/strict";
import { lower } from "../compiler/mod.ts";
import { entryNodes, numel } from "../compiler/ir/node.ts";
import { type MaskSpec, Op, type OpParams } from "../compiler/ir/ops.ts";

/** Official counts (models/__init__.py build, var_reference.md §1). */
const OFFICIAL: Readonly<Record<string, number>> = {
  var_d16: 310_283_520,
  var_d20: 600_917_136,
  var_d24: 1_033_399_360,
  var_d30: 2_010_020_356,
  var_d36: 2_353_893_904,
};

for (const [name, count] of Object.entries(OFFICIAL)) {
  Deno.test(`preset ${name} has exactly ${count.toLocaleString("en-US")} VAR parameters`, () => {
    const module = lower(`examples/${name}.var.ts`);
    const params = module.nodes.filter((n) => n.op === Op.Param).map((n) => n.params as OpParams[Op.Param]);
    const total = params.filter((p) => p.source === "var").reduce((a, p) => a + numel(p.shape), 0);
    assert.equal(total, count);
    const attention = entryNodes(module, "forward").map((id) => module.nodes[id]!).filter((n) =>
      n.op === Op.ExactAttention
    );
    assert.equal(attention.length, module.meta.depth);
    const mask = (attention[0]!.params as { mask: MaskSpec }).mask;
    assert.equal(mask.kind, "block_causal");
  });
}

Deno.test("d36 uses shared AdaLN and the 512 schedule; d16 does not", () => {
  const d36 = lower("examples/var_d36.var.ts");
  const names = (m: typeof d36) =>
    new Set(m.nodes.filter((n) => n.op === Op.Param).map((n) => (n.params as OpParams[Op.Param]).name));
  assert.ok(names(d36).has("shared_ada_lin.1.weight") && names(d36).has("blocks.35.ada_gss"));
  assert.ok(!names(d36).has("blocks.0.ada_lin.1.weight"));
  assert.equal(d36.meta.tokens, 2240);
  const d16 = lower("examples/var_d16.var.ts");
  assert.ok(names(d16).has("blocks.15.ada_lin.1.weight") && !names(d16).has("shared_ada_lin.1.weight"));
  assert.equal(d16.meta.tokens, 680);
});

Deno.test("the official Phi table is derived for 10 and 14 scales", async () => {
  const { phiIndexTable } = await import("../compiler/dsl/var_config.ts");
  assert.deepEqual(phiIndexTable(10), [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]);
  assert.deepEqual(phiIndexTable(14), [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3]);
});
