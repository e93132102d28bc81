/**
 * @file Pass "fuse-heads": slice → split into heads → (L2-normalise) → (× τ [1, H, 1, 1]) becomes
 * one Heads node with the right column offset, eps and τ; other permutations, shapes, orders and
 * nodes read elsewhere stay apart.
 */
import assert from "node:assert/strict";
import { eliminateDeadCode } from "./eliminate_dead_code.ts";
import { fuseHeads } from "./fuse_heads.ts";
import { Op } from "../ir/ops.ts";
import { LANG, lowerBefore, outputNode, runPass } from "../../tests/_passes.ts";

// x packs three groups of H = 2 heads × D = 4 columns, as q | k | v
const spec = (body: string, outputs = "y") =>
  `import { B, input, l2Normalize, model, mul, permute, reshape, slice, tag } from "${LANG}";
const x = input("x", [B, 3, 24]);
const tau = input("tau", [1, 2, 1, 1]);
const one = input("one", [1, 1, 1, 1]);
${body}
export default model({ name: "heads", outputs: { ${outputs} } });
`;
const split = (t: string, perm = "[0, 2, 1, 3]") => `permute(reshape(${t}, [B, 3, 2, 4]), ${perm})`;

/** The module after the pass and dead-code elimination, and its ops, inputs aside. */
function ops(body: string, outputs?: string) {
  const { module, diagnostics } = runPass(fuseHeads, lowerBefore(spec(body, outputs), "fuse-heads"));
  assert.deepEqual(diagnostics, []);
  const m = runPass(eliminateDeadCode, module).module;
  return { m, ops: m.nodes.filter((n) => n.op !== Op.Input).map((n) => n.op) };
}

Deno.test("fuse-heads: q, k and v of a packed projection each become one Heads node", () => {
  const cases = [
    [`const y = mul(l2Normalize(${split("slice(x, 2, 0, 8)")}, 1e-12), tau);`, 0, 1e-12, ["x", "tau"]],
    [`const y = mul(tau, l2Normalize(${split("slice(x, 2, 8, 16)")}, 1e-6));`, 8, 1e-6, ["x", "tau"]],
    [`const y = l2Normalize(${split("slice(x, 2, 8, 16)")}, 1e-12);`, 8, 1e-12, ["x"]],
    [`const y = tag(${split("slice(x, 2, 16, 24)")}, "v");`, 16, null, ["x"]],
    [`const y = ${split("slice(x, 2, 16, 24)")};`, 16, null, ["x"]],
  ] as const;
  for (const [body, start, eps, inputs] of cases) {
    const { m, ops: got } = ops(body);
    assert.deepEqual(got, [Op.Heads], body);
    const y = outputNode(m, "forward", "y");
    assert.deepEqual(y.params, { start, heads: 2, dim: 4, eps }, body);
    assert.deepEqual(y.inputs.map((i) => (m.nodes[i]!.params as { name: string }).name), inputs, body);
    assert.deepEqual(y.type?.shape, ["B", 2, 3, 4]);
  }
});

Deno.test("fuse-heads: other permutations, scales and orders, and nodes read elsewhere stay apart", () => {
  const cases: [string, Op[], string?][] = [
    // a labelled slice is read as it is: the split after it still fuses
    [`const y = ${split('tag(slice(x, 2, 0, 8), "s")')};`, [Op.Slice, Op.Heads]],
    [`const y = ${split("slice(x, 2, 0, 8)", "[0, 2, 3, 1]")};`, [Op.Slice, Op.Reshape, Op.Permute]],
    [`const y = mul(${split("slice(x, 2, 0, 8)")}, one);`, [Op.Heads, Op.Binary]],
    // τ before the normalisation is not the kernel's order
    [`const y = l2Normalize(mul(${split("slice(x, 2, 0, 8)")}, tau), 1e-12);`, [Op.Heads, Op.L2Normalize]],
    [`const s = slice(x, 2, 0, 8); const y = ${split("s")};`, [Op.Slice, Op.Heads], "y, s"],
  ];
  for (const [body, want, outputs] of cases) assert.deepEqual(ops(body, outputs).ops, want, body);
});
