/**
 * @file Pass "infer-shapes" on small specs: the dtype and shape of every kind of node, worked out by
 * hand from the op's rule, and a shape error reported at the spec call that made the node, once per
 * cause (nodes that depend on a failed node are not reported again).
 */
import assert from "node:assert/strict";
import { parseSpec } from "../dsl/mod.ts";
import { LANG, outputNode, positionOf, runPass, SPEC } from "../../tests/_passes.ts";
import { inferShapes } from "./infer_shapes.ts";

Deno.test("infer-shapes: every node's dtype and shape, as the op rules give them by hand", () => {
  const text =
    `import { B, concat, gather, input, levelIds, linear, model, param, permute, reshape, slice, add, attention, noMask } from "${LANG}";
const x = input("x", [B, 3, 8]);
const y = linear(x, param("w", [5, 8]), param("b", [5]));
const p = permute(y, [0, 2, 1]);
const r = reshape(p, [B, 15]);
const c = concat([r, r], 1);
const s = slice(c, 1, 2, 7);
const g = gather(param("table", [4, 6]), input("idx", [B, 2], "i32"));
const h = add(g, param("row", [6]));
const q = input("q", [B, 2, 3, 4]);
const o = attention(q, input("k", [B, 2, 7, 4]), input("v", [B, 2, 7, 5]), { scale: 0.5, mask: noMask() });
export default model({ name: "shapes", outputs: { y, p, r, c, s, ids: levelIds([1, 2, 3]), g, h, o } });
`;
  const { module, diagnostics } = runPass(inferShapes, parseSpec(SPEC, text));
  assert.deepEqual(diagnostics, []);
  const want: Record<string, [string, (number | "B")[]]> = {
    y: ["f32", ["B", 3, 5]], // x [.., 8] · w[5, 8]ᵀ
    p: ["f32", ["B", 5, 3]], // out[i] = in[perm[i]]
    r: ["f32", ["B", 15]],
    c: ["f32", ["B", 30]], // 15 + 15 along axis 1
    s: ["f32", ["B", 5]], // [2, 7)
    ids: ["i32", [14]], // 1 + 4 + 9 tokens
    g: ["f32", ["B", 2, 6]], // idx shape + the table's row width
    h: ["f32", ["B", 2, 6]], // [6] broadcast over [B, 2, 6]
    o: ["f32", ["B", 2, 3, 5]], // [B, H, Tq, Dv]
  };
  for (const [name, [dtype, shape]] of Object.entries(want)) {
    assert.deepEqual(outputNode(module, "forward", name).type, { dtype, shape }, name);
  }
  assert.ok(module.nodes.every((n) => n.type !== undefined), "every node is typed");
});

Deno.test("infer-shapes: a shape error is reported at its spec call, once per cause; its users are not", () => {
  const text = `import { B, add, input, linear, model, param, silu } from "${LANG}";
const x = input("x", [B, 8]);
const bad = linear(x, param("w", [5, 7]));
const after = silu(bad);
const also = add(x, param("p", [3]));
export default model({ name: "bad", outputs: { after, also } });
`;
  const { module, diagnostics } = runPass(inferShapes, parseSpec(SPEC, text));
  assert.deepEqual(diagnostics.map((d) => [d.id, d.severity]), [["shape-mismatch", "error"], [
    "shape-mismatch",
    "error",
  ]]);
  const [linear, broadcast] = diagnostics;
  assert.equal(
    linear!.message,
    "Cannot apply linear weight [5, 7] to input [B, 8]: input width is 8, weight expects 7",
  );
  const at = positionOf(text, "linear(x, param");
  assert.deepEqual([linear!.span?.file, linear!.span?.line, linear!.span?.column], [
    "tests/specs/pass_unit.var.ts",
    at.line,
    at.column,
  ]);
  assert.match(broadcast!.message, /^Cannot add \[B, 8\] and \[3\]: axis 1 has sizes 8 and 3$/);
  assert.equal(broadcast!.span?.line, positionOf(text, "add(x").line);
  // The failed node and its user stay untyped; the rest of the module is typed.
  assert.equal(outputNode(module, "forward", "after").type, undefined);
  assert.deepEqual(module.nodes[0]!.type, { dtype: "f32", shape: ["B", 8] });
});
