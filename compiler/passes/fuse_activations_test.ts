/**
 * @file Pass "fuse-activations": silu(groupNorm(x)) becomes one GroupNorm with `silu: true` and
 * silu/gelu(linear(x)) one Linear with that `act`, when nothing else reads the inner node; an inner
 * node also read elsewhere, an entry output or a tapped label stays apart, and so does an
 * activation of anything else (or exp, which no kernel fuses).
 */
import assert from "node:assert/strict";
import { eliminateDeadCode } from "./eliminate_dead_code.ts";
import { fuseActivations } from "./fuse_activations.ts";
import { Op, type OpParams } from "../ir/ops.ts";
import { LANG, lowerBefore, outputNode, runPass } from "../../tests/_passes.ts";

const spec = (body: string, outputs: string) =>
  `import { add, B, exp, geluTanh, groupNorm, input, linear, model, param, silu, tag } from "${LANG}";
const x = input("x", [B, 4, 2, 2]);
const norm = (t: typeof x) => groupNorm(t, param("w", [4], "vae"), param("b", [4], "vae"), 2, 1e-6);
const lin = (t: typeof x) => linear(t, param("fc.weight", [3, 2]), param("fc.bias", [3]));
${body}
export default model({ name: "fuse", outputs: { ${outputs} } });
`;

/** Runs the pass and dead-code elimination; the ops left, in order. */
function fused(text: string) {
  const { module, diagnostics } = runPass(fuseActivations, lowerBefore(text, "fuse-activations"));
  assert.deepEqual(diagnostics, []);
  return runPass(eliminateDeadCode, module).module;
}

const ops = (m: ReturnType<typeof fused>) =>
  m.nodes.filter((n) => n.op !== Op.Param && n.op !== Op.Input).map((n) => n.op);

Deno.test("fuse-activations: silu(groupNorm(x)) becomes one GroupNorm with silu, the same parameters", () => {
  const m = fused(spec("const y = silu(norm(x));", "y"));
  assert.deepEqual(ops(m), [Op.GroupNorm]);
  const y = outputNode(m, "forward", "y");
  assert.equal(y.op, Op.GroupNorm);
  assert.deepEqual(y.params as OpParams[Op.GroupNorm], { groups: 2, eps: 1e-6, silu: true });
  assert.deepEqual(y.type?.shape, ["B", 4, 2, 2]);
});

Deno.test("fuse-activations: a GroupNorm read twice, an output or tagged stays; a SiLU of anything else stays", () => {
  const cases: [string, string, Op[]][] = [
    ["const n = norm(x); const y = add(silu(n), n);", "y", [Op.GroupNorm, Op.Unary, Op.Binary]],
    ["const n = norm(x); const y = silu(n);", "y, n", [Op.GroupNorm, Op.Unary]],
    ['const y = silu(tag(norm(x), "normed"));', "y", [Op.GroupNorm, Op.Unary]],
    ["const y = silu(add(x, x));", "y", [Op.Binary, Op.Unary]],
    ["const l = lin(x); const y = add(geluTanh(l), l);", "y", [Op.Linear, Op.Unary, Op.Binary]],
    ["const y = exp(lin(x));", "y", [Op.Linear, Op.Unary]],
  ];
  for (const [body, outputs, want] of cases) {
    const m = fused(spec(body, outputs));
    assert.deepEqual(ops(m), want, body);
    const g = m.nodes.find((n) => n.op === Op.GroupNorm);
    if (g) assert.equal((g.params as OpParams[Op.GroupNorm]).silu, false, body);
    const l = m.nodes.find((n) => n.op === Op.Linear);
    if (l) assert.equal((l.params as OpParams[Op.Linear]).act, "none", body);
  }
});

Deno.test("fuse-activations: silu and gelu of a linear become one Linear with that act", () => {
  for (const fn of ["silu", "geluTanh"] as const) {
    const m = fused(spec(`const y = ${fn}(lin(x));`, "y"));
    assert.deepEqual(ops(m), [Op.Linear]);
    const y = outputNode(m, "forward", "y");
    assert.deepEqual(y.params as OpParams[Op.Linear], { bias: true, act: fn === "geluTanh" ? "gelu_tanh" : "silu" });
    assert.deepEqual(y.type?.shape, ["B", 4, 2, 3]);
  }
});
