/**
 * @file Pass "merge-params": params naming the same checkpoint tensor (name and source) become one
 * node that every user reads; the same name in the other checkpoint stays apart; the same name with
 * another shape is an error at the later declaration, with a note at the first.
 */
import assert from "node:assert/strict";
import { Op, type OpParams } from "../ir/ops.ts";
import { LANG, lowerBefore, outputNode, positionOf, runPass } from "../../tests/_passes.ts";
import { mergeParams } from "./merge_params.ts";

const params = (m: ReturnType<typeof lowerBefore>) =>
  m.nodes.filter((n) => n.op === Op.Param).map((n) => {
    const p = n.params as OpParams[Op.Param];
    return `${p.source}:${p.name}`;
  });

Deno.test("merge-params: duplicates become one node read by every user; another source stays apart", () => {
  const text = `import { B, input, linear, model, param } from "${LANG}";
const x = input("x", [B, 4]);
const a = linear(x, param("w", [4, 4]));
const b = linear(a, param("w", [4, 4]));
const c = linear(b, param("w", [4, 4], "vae"));
export default model({ name: "dup", outputs: { a, b, c } });
`;
  const before = lowerBefore(text, "merge-params");
  assert.deepEqual(params(before), ["var:w", "var:w", "vae:w"]);
  const { module, diagnostics } = runPass(mergeParams, before);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(params(module), ["var:w", "vae:w"]);
  const a = outputNode(module, "forward", "a"), b = outputNode(module, "forward", "b");
  const c = outputNode(module, "forward", "c");
  assert.equal(a.inputs[1], b.inputs[1], "both linears read the one var:w");
  assert.notEqual(c.inputs[1], a.inputs[1], "vae:w is another tensor");
  assert.equal(b.inputs[0], a.id, "b still reads a after renumbering");
  assert.equal(module.nodes.length, before.nodes.length - 1);
});

Deno.test("merge-params: a module without duplicates is returned as it is", () => {
  const text = `import { B, input, linear, model, param } from "${LANG}";
export default model({ name: "one", outputs: { y: linear(input("x", [B, 4]), param("w", [2, 4])) } });
`;
  const before = lowerBefore(text, "merge-params");
  assert.equal(runPass(mergeParams, before).module, before);
});

Deno.test("merge-params: the same tensor with another shape is an error here, noting the first declaration", () => {
  const text = `import { B, input, linear, model, param } from "${LANG}";
const x = input("x", [B, 4]);
const a = linear(x, param("w", [4, 4]));
const b = linear(x, param("w", [3, 4]));
export default model({ name: "conflict", outputs: { a, b } });
`;
  const { diagnostics } = runPass(mergeParams, lowerBefore(text, "merge-params"));
  assert.equal(diagnostics.length, 1);
  const d = diagnostics[0]!;
  assert.equal(d.id, "param-conflict");
  assert.equal(d.message, 'Checkpoint tensor "w" is declared as [3,4] here and as [4,4] before');
  const second = positionOf(text, 'param("w", [3, 4])'), first = positionOf(text, 'param("w", [4, 4])');
  assert.deepEqual([d.span?.line, d.span?.column], [second.line, second.column]);
  assert.equal(d.notes[0]?.message, "first declared here");
  assert.deepEqual([d.notes[0]?.span?.line, d.notes[0]?.span?.column], [first.line, first.column]);
});
