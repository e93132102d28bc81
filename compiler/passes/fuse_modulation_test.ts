/**
 * @file Pass "fuse-modulation": h + h·s + b of a LayerNorm h with s, b [B, 1, C] becomes one
 * LayerNorm reading x, s and b, in either operand order; a LayerNorm read elsewhere, another shape
 * of s or a different formula stays as it is.
 */
import assert from "node:assert/strict";
import { eliminateDeadCode } from "./eliminate_dead_code.ts";
import { fuseModulation } from "./fuse_modulation.ts";
import { Op } from "../ir/ops.ts";
import { LANG, lowerBefore, outputNode, runPass } from "../../tests/_passes.ts";

const spec = (body: string) =>
  `import { add, B, input, layerNorm, model, mul, sub } from "${LANG}";
const x = input("x", [B, 3, 4]);
const s = input("s", [B, 1, 4]);
const b = input("b", [B, 1, 4]);
const h = layerNorm(x, 1e-6);
${body}
export default model({ name: "mod", outputs: { y } });
`;

/** The ops left after the pass and dead-code elimination, inputs aside. */
function ops(body: string) {
  const { module, diagnostics } = runPass(fuseModulation, lowerBefore(spec(body), "fuse-modulation"));
  assert.deepEqual(diagnostics, []);
  const m = runPass(eliminateDeadCode, module).module;
  return { m, ops: m.nodes.filter((n) => n.op !== Op.Input).map((n) => n.op) };
}

Deno.test("fuse-modulation: h + h·s + b becomes one LayerNorm of x, s, b in any operand order", () => {
  for (const body of ["const y = add(add(h, mul(h, s)), b);", "const y = add(b, add(mul(s, h), h));"]) {
    const { m, ops: got } = ops(body);
    assert.deepEqual(got, [Op.LayerNorm], body);
    const y = outputNode(m, "forward", "y");
    const names = y.inputs.map((i) => (m.nodes[i]!.params as { name: string }).name);
    assert.deepEqual(names, ["x", "s", "b"], body);
    assert.deepEqual(y.type?.shape, ["B", 3, 4]);
  }
});

Deno.test("fuse-modulation: other uses of h, other shapes and other formulas stay apart", () => {
  const cases: [string, Op[]][] = [
    ["const y = add(add(add(h, mul(h, s)), b), h);", [Op.LayerNorm, Op.Binary, Op.Binary, Op.Binary, Op.Binary]],
    ["const y = add(add(h, mul(h, x)), b);", [Op.LayerNorm, Op.Binary, Op.Binary, Op.Binary]],
    ["const y = add(sub(h, mul(h, s)), b);", [Op.LayerNorm, Op.Binary, Op.Binary, Op.Binary]],
  ];
  for (const [body, want] of cases) assert.deepEqual(ops(body).ops, want, body);
});
