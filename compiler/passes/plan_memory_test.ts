/**
 * @file Pass "plan-memory": the peak live bytes of a tiny entry worked out by hand (f32, values freed
 * after their last use, params and reshapes take no new memory), recorded in `meta.memory`; a tensor
 * larger than the machine's memory and a spec-defined "memory" meta key are errors at their spans.
 */
import assert from "node:assert/strict";
import { LANG, lowerBefore, positionOf, runPass } from "../../tests/_passes.ts";
import { entryMemory, planMemory } from "./plan_memory.ts";

Deno.test("plan-memory: peak bytes of a hand-computed entry, fixed and per batch row", () => {
  const text = `import { B, exp, input, model, param, reshape, scale, silu } from "${LANG}";
const x = input("x", [B, 4]);
const a = scale(x, 2);
const b = silu(a);
const y = exp(reshape(b, [B, 2, 2]));
const t = scale(param("w", [3, 5]), 2);
export default model({ name: "mem", entries: { forward: { y, t }, small: { u: scale(x, 5) } } });
`;
  // Per batch row, a [B, 4] f32 value is 16 bytes. In order: x (16), a (32; x freed), b (32; a freed),
  // the reshape (a view: 0), y (at most 32 with b). So 32 bytes per row. Fixed: t = 3·5·4 = 60 bytes,
  // an output, alive to the end; the param w is checkpoint memory. The small entry: x and u, 32 per row.
  const module = lowerBefore(text, "plan-memory");
  assert.deepEqual(entryMemory(module, "forward"), { fixedBytes: 60, perRowBytes: 32 });
  const { module: planned, diagnostics } = runPass(planMemory, module);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(planned.meta.memory, {
    forward: { fixedBytes: 60, perRowBytes: 32 },
    small: { fixedBytes: 0, perRowBytes: 32 },
  });
  assert.equal(planned.nodes, module.nodes, "the nodes are unchanged");
});

Deno.test("plan-memory: a tensor larger than the machine's memory is an error at its spec call", () => {
  const text = `import { B, input, model, silu } from "${LANG}";
const x = input("x", [B, 1000000, 1000000]);
export default model({ name: "huge", outputs: { y: silu(x) } });
`;
  const { diagnostics } = runPass(planMemory, lowerBefore(text, "plan-memory"));
  // Both x and silu(x) hold 10¹² f32 values per row: 4·10¹² bytes = 3725.3 GiB.
  assert.deepEqual(diagnostics.map((d) => d.id), ["resource-limit", "resource-limit"]);
  assert.match(diagnostics[1]!.message, /^Tensor \[B, 1000000, 1000000\] of unary needs 3725\.3 GiB for one batch row/);
  assert.equal(diagnostics[1]!.span?.line, positionOf(text, "silu(x)").line);
  assert.equal(diagnostics[1]!.span?.column, positionOf(text, "silu(x)").column);
});

Deno.test('plan-memory: a spec meta key "memory" is refused (the plan is stored there)', () => {
  const text = `import { B, input, model, silu } from "${LANG}";
export default model({ name: "m", outputs: { y: silu(input("x", [B, 4])) }, meta: { memory: 1 } });
`;
  const { diagnostics } = runPass(planMemory, lowerBefore(text, "plan-memory"));
  assert.deepEqual(diagnostics.map((d) => d.id), ["reserved-meta"]);
});
