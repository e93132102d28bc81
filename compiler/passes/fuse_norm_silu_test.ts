/**
 * @file Pass "fuse-norm-silu": silu(groupNorm(x)) becomes one GroupNorm with `silu: true` when
 * nothing else reads the GroupNorm; a GroupNorm that is also read elsewhere, an entry output or a
 * tapped label stays apart, and so does a SiLU of anything else.
 */
import assert from "node:assert/strict";
import { eliminateDeadCode } from "./eliminate_dead_code.ts";
import { fuseNormSilu } from "./fuse_norm_silu.ts";
import { Op, type OpParams } from "../ir/ops.ts";
import { LANG, lowerBefore, outputNode, runPass } from "../../tests/_passes.ts";

const spec = (body: string, outputs: string) =>
  `import { add, B, groupNorm, input, model, param, silu, tag } from "${LANG}";
const x = input("x", [B, 4, 2, 2]);
const norm = (t: typeof x) => groupNorm(t, param("w", [4], "vae"), param("b", [4], "vae"), 2, 1e-6);
${body}
export default model({ name: "fuse", outputs: { ${outputs} } });
`;

/** Runs the pass and dead-code elimination; the ops left, in order. */
function fused(text: string) {
  const { module, diagnostics } = runPass(fuseNormSilu, lowerBefore(text, "fuse-norm-silu"));
  assert.deepEqual(diagnostics, []);
  return runPass(eliminateDeadCode, module).module;
}

const ops = (m: ReturnType<typeof fused>) =>
  m.nodes.filter((n) => n.op !== Op.Param && n.op !== Op.Input).map((n) => n.op);

Deno.test("fuse-norm-silu: silu(groupNorm(x)) becomes one GroupNorm with silu, the same parameters", () => {
  const m = fused(spec("const y = silu(norm(x));", "y"));
  assert.deepEqual(ops(m), [Op.GroupNorm]);
  const y = outputNode(m, "forward", "y");
  assert.equal(y.op, Op.GroupNorm);
  assert.deepEqual(y.params as OpParams[Op.GroupNorm], { groups: 2, eps: 1e-6, silu: true });
  assert.deepEqual(y.type?.shape, ["B", 4, 2, 2]);
});

Deno.test("fuse-norm-silu: a GroupNorm read twice, an output or tagged stays; a SiLU of anything else stays", () => {
  const cases: [string, string, Op[]][] = [
    ["const n = norm(x); const y = add(silu(n), n);", "y", [Op.GroupNorm, Op.Unary, Op.Binary]],
    ["const n = norm(x); const y = silu(n);", "y, n", [Op.GroupNorm, Op.Unary]],
    ['const y = silu(tag(norm(x), "normed"));', "y", [Op.GroupNorm, Op.Unary]],
    ["const y = silu(add(x, x));", "y", [Op.Binary, Op.Unary]],
  ];
  for (const [body, outputs, want] of cases) {
    const m = fused(spec(body, outputs));
    assert.deepEqual(ops(m), want, body);
    const g = m.nodes.find((n) => n.op === Op.GroupNorm);
    if (g) assert.equal((g.params as OpParams[Op.GroupNorm]).silu, false, body);
  }
});
