/**
 * @file Pass "fuse-residual": a residual plus a gated branch, x + g·a (the AdaLN blocks' x + γ·attn
 * and x + γ·ffn), becomes one three-input Binary add that the `addMul` kernel runs in one pass over
 * memory instead of two, with the same bits (the product is rounded to float32 before the sum).
 */
import { absorbable, isOp, type Node } from "../ir/node.ts";
import { Op } from "../ir/ops.ts";
import type { Pass } from "../pass.ts";

/**
 * Matches add(x, mul(g, a)) in either operand order of the add, where the mul is read only by that
 * add and is no entry output or tap label. The add keeps its id, span and label and reads x, g, a
 * (the mul's operands in their order); the mul is left unread for eliminate-dead-code. Runs after
 * fuse-modulation, which takes the h + h·s of a modulated LayerNorm first.
 */
export const fuseResidual: Pass = {
  name: "fuse-residual",
  summary: "Fold the gate product of x + g·a into the add (one pass over memory instead of two)",
  run(module) {
    const alone = absorbable(module);
    const isMul = (n: Node) => isOp(n, Op.Binary) && n.params.fn === "mul" && n.inputs.length === 2;
    let changed = false;
    const nodes = module.nodes.map((n): Node => {
      if (!isOp(n, Op.Binary) || n.params.fn !== "add" || n.inputs.length !== 2) return n;
      for (const [x, m] of [n.inputs, [...n.inputs].reverse()] as const) {
        const mul = module.nodes[m!]!;
        if (!isMul(mul) || !alone(mul, 1)) continue;
        changed = true;
        return { ...n, inputs: [x!, ...mul.inputs] };
      }
      return n;
    });
    return changed ? { ...module, nodes } : module;
  },
};
