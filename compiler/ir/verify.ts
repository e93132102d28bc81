/** @file Structural invariants of an IR module, checked after every pass. */
import { type IrModule, isOp } from "./node.ts";
import { arity, Op } from "./ops.ts";

/** Returns the broken invariants (empty when the module is valid). */
export function verifyModule(module: IrModule): string[] {
  const problems: string[] = [];
  const typed = module.nodes.some((n) => n.type !== undefined);
  module.nodes.forEach((node, i) => {
    if (node.id !== i) problems.push(`node at index ${i} has id ${node.id}`);
    for (const input of node.inputs) {
      if (!(input >= 0 && input < i)) problems.push(`%${i} uses %${input}, which is not defined before it`);
    }
    const want = arity[node.op];
    const n = node.inputs.length;
    const ok = want === "n" ? n >= 1 : typeof want === "number" ? n === want : n >= want[0] && n <= want[1];
    if (!ok) problems.push(`%${i} (${node.op}) has ${n} inputs`);
    if (isOp(node, Op.Binary) && n === 3 && node.params.fn !== "add") {
      problems.push(`%${i} (binary ${node.params.fn}) has 3 inputs: only add takes a third (a + b·c)`);
    }
    if (typed && node.type === undefined) problems.push(`%${i} (${node.op}) has no type after infer-shapes`);
  });
  for (const [entry, outs] of Object.entries(module.entries)) {
    for (const [name, id] of Object.entries(outs)) {
      if (!(id >= 0 && id < module.nodes.length)) problems.push(`output "${entry}.${name}" refers to missing %${id}`);
    }
  }
  return problems;
}
