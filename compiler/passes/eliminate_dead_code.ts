/** @file Pass "eliminate-dead-code": drops nodes no output (or tapped label) depends on. */
import { compact } from "../ir/node.ts";
import { Op } from "../ir/ops.ts";
import type { Pass } from "../pass.ts";

/**
 * Keeps nodes reachable from outputs, labelled nodes (tappable) and params (the checkpoint's
 * known tensors, even when this output set does not read them), renumbered densely.
 */
export const eliminateDeadCode: Pass = {
  name: "eliminate-dead-code",
  summary: "Remove nodes that no output, labelled tap or param list needs",
  run(module) {
    const live = new Set<number>();
    const stack = [
      ...Object.values(module.outputs),
      ...module.nodes.filter((n) => n.label !== undefined || n.op === Op.Param).map((n) => n.id),
    ];
    while (stack.length > 0) {
      const id = stack.pop()!;
      if (live.has(id)) continue;
      live.add(id);
      stack.push(...module.nodes[id]!.inputs);
    }
    return compact(module, (id) => live.has(id));
  },
};
