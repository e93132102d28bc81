/** @file Pass "merge-params": one node per checkpoint tensor, however often the spec names it. */
import { nodeError } from "../diagnostics.ts";
import { compact, isOp, type Node } from "../ir/node.ts";
import { Op } from "../ir/ops.ts";
import type { Pass } from "../pass.ts";

/** Replaces repeated `param` nodes of the same name by the first; conflicting shapes are errors. */
export const mergeParams: Pass = {
  name: "merge-params",
  summary: "Merge param nodes that name the same checkpoint tensor; reject conflicting shapes",
  run(module, ctx) {
    const first = new Map<string, Node<Op.Param>>();
    const replace = new Map<number, number>();
    for (const node of module.nodes) {
      if (!isOp(node, Op.Param)) continue;
      const key = `${node.params.source}:${node.params.name}`;
      const seen = first.get(key);
      if (!seen) {
        first.set(key, node);
      } else if (seen.params.shape.join() !== node.params.shape.join()) {
        ctx.report(nodeError(
          "param-conflict",
          `Checkpoint tensor "${node.params.name}" is declared as [${node.params.shape}] here and as [${seen.params.shape}] before`,
          node,
          [{ message: "first declared here", span: seen.span }],
        ));
      } else replace.set(node.id, seen.id);
    }
    return replace.size === 0 ? module : compact(module, (id) => !replace.has(id), replace);
  },
};
