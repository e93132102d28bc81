/**
 * @file Pass "fuse-norm-silu": silu(groupNorm(x)) becomes one GroupNorm node with `silu: true`, so
 * the kernel applies SiLU in the normalisation's single write instead of a second pass over memory
 * (every ResNet block of the VQ-VAE decoder has two such pairs).
 */
import { isOp, type Node } from "../ir/node.ts";
import { Op } from "../ir/ops.ts";
import type { Pass } from "../pass.ts";

/**
 * A SiLU whose input is a GroupNorm read by nothing else (no other node, no entry output, no tap
 * label) takes the GroupNorm's place: same inputs and parameters with `silu: true`, the SiLU's id,
 * span and label. The GroupNorm is left unread for eliminate-dead-code.
 */
export const fuseNormSilu: Pass = {
  name: "fuse-norm-silu",
  summary: "Fold a SiLU into the GroupNorm it reads (one pass over memory instead of two)",
  run(module) {
    const readers = new Map<number, number>();
    for (const n of module.nodes) for (const i of n.inputs) readers.set(i, (readers.get(i) ?? 0) + 1);
    const outputs = new Set(Object.values(module.entries).flatMap((outs) => Object.values(outs)));
    let changed = false;
    const nodes = module.nodes.map((n): Node => {
      if (!isOp(n, Op.Unary) || n.params.fn !== "silu") return n;
      const g = module.nodes[n.inputs[0]!]!;
      if (!isOp(g, Op.GroupNorm) || g.params.silu || readers.get(g.id) !== 1 || outputs.has(g.id) || g.label) {
        return n;
      }
      changed = true;
      return { ...n, op: Op.GroupNorm, params: { ...g.params, silu: true }, inputs: g.inputs };
    });
    return changed ? { ...module, nodes } : module;
  },
};
