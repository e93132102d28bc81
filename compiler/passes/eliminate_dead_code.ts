/** @file Pass "eliminate-dead-code": drops nodes no output (or tapped label) depends on. */
import { allOutputs, compact } from "../ir/node.ts";
import { Op } from "../ir/ops.ts";
import type { Pass } from "../pass.ts";

/**
 * Keeps nodes reachable from any entry's outputs, and params (the checkpoint's known tensors,
 * even when no entry reads them), renumbered densely.
 */
export const eliminateDeadCode: Pass = {
  name: "eliminate-dead-code",
  summary: "Remove nodes that no entry output needs (params stay: they define the checkpoint)",
  run(module) {
    const live = new Set<number>();
    const stack = [
      ...allOutputs(module),
      ...module.nodes.filter((n) => n.op === Op.Param).map((n) => n.id),
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
