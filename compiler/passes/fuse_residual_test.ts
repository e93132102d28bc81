/**
 * @file Pass "fuse-residual": x + g·a becomes one three-input add in either operand order, with
 * the gate's operands in their order; a product read elsewhere, labelled or returned stays apart.
 */
import assert from "node:assert/strict";
import { eliminateDeadCode } from "./eliminate_dead_code.ts";
import { fuseResidual } from "./fuse_residual.ts";
import { Op } from "../ir/ops.ts";
import { LANG, lowerBefore, outputNode, runPass } from "../../tests/_passes.ts";

const spec = (body: string, outputs = "y") =>
  `import { add, B, input, model, mul, sub, tag } from "${LANG}";
const x = input("x", [B, 3, 4]);
const g = input("g", [B, 1, 4]);
const a = input("a", [B, 3, 4]);
${body}
export default model({ name: "res", outputs: { ${outputs} } });
`;

/** The module after the pass and dead-code elimination, and its ops, inputs aside. */
function ops(body: string, outputs?: string) {
  const { module, diagnostics } = runPass(fuseResidual, lowerBefore(spec(body, outputs), "fuse-residual"));
  assert.deepEqual(diagnostics, []);
  const m = runPass(eliminateDeadCode, module).module;
  return { m, ops: m.nodes.filter((n) => n.op !== Op.Input).map((n) => n.op) };
}

Deno.test("fuse-residual: x + g·a becomes one add of x, g, a in either order of the add", () => {
  for (
    const [body, want] of [
      ["const y = add(x, mul(g, a));", ["x", "g", "a"]],
      ["const y = add(mul(a, g), x);", ["x", "a", "g"]],
    ] as const
  ) {
    const { m, ops: got } = ops(body);
    assert.deepEqual(got, [Op.Binary], body);
    const y = outputNode(m, "forward", "y");
    assert.deepEqual(y.inputs.map((i) => (m.nodes[i]!.params as { name: string }).name), want, body);
    assert.deepEqual(y.type?.shape, ["B", 3, 4]);
  }
});

Deno.test("fuse-residual: a product read elsewhere, labelled or returned, and other formulas stay apart", () => {
  const two = [Op.Binary, Op.Binary];
  const cases: [string, Op[], string?][] = [
    ["const p = mul(g, a); const y = add(add(x, p), p);", [Op.Binary, Op.Binary, Op.Binary]],
    ["const y = add(x, tag(mul(g, a), 'gated'));", two],
    ["const p = mul(g, a); const y = add(x, p);", two, "y, p"],
    ["const y = sub(x, mul(g, a));", two],
    ["const y = add(x, add(g, a));", two],
  ];
  for (const [body, want, outputs] of cases) assert.deepEqual(ops(body, outputs).ops, want, body);
});
