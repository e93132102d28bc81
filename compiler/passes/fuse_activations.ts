/**
 * @file Pass "fuse-activations": an activation becomes part of the node it reads, so its kernel
 * applies it in the same write instead of a second pass over memory. silu(groupNorm(x)) becomes a
 * GroupNorm with `silu: true` (every ResNet block of the VQ-VAE decoder has two), and silu or
 * gelu_tanh of a linear becomes a Linear with that `act` (the transformer's MLP).
 */
import { absorbable, isOp, type Node } from "../ir/node.ts";
import { Op } from "../ir/ops.ts";
import type { Pass } from "../pass.ts";

/**
 * A unary silu or gelu_tanh whose input is read by nothing else (no other node, no entry output,
 * no tap label) and can take it takes that input's place: the input's op, inputs and parameters
 * with the activation set, the unary's id, span and label. The input is left unread for
 * eliminate-dead-code.
 */
export const fuseActivations: Pass = {
  name: "fuse-activations",
  summary: "Fold silu into the GroupNorm and silu/gelu into the linear they read (one pass over memory)",
  run(module) {
    const alone = absorbable(module);
    let changed = false;
    const nodes = module.nodes.map((n): Node => {
      if (!isOp(n, Op.Unary) || n.params.fn === "exp") return n;
      const src = module.nodes[n.inputs[0]!]!;
      if (!alone(src, 1)) return n;
      const fn = n.params.fn;
      if (isOp(src, Op.GroupNorm) && fn === "silu" && !src.params.silu) {
        changed = true;
        return { ...n, op: Op.GroupNorm, params: { ...src.params, silu: true }, inputs: src.inputs };
      }
      if (isOp(src, Op.Linear) && src.params.act === "none") {
        changed = true;
        return { ...n, op: Op.Linear, params: { ...src.params, act: fn }, inputs: src.inputs };
      }
      return n;
    });
    return changed ? { ...module, nodes } : module;
  },
};
