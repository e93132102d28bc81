/**
 * @file Pass "fuse-modulation": the AdaLN modulation of a LayerNorm, h + h·s + b with h = LN(x),
 * x [B, T, C] and s, b [B, 1, C] (`modulate` of compiler/dsl/lib/var.ts), becomes one LayerNorm
 * node reading x, s and b: one pass over the activations instead of four.
 */
import { absorbable, isOp, type Node } from "../ir/node.ts";
import { Op } from "../ir/ops.ts";
import type { Pass } from "../pass.ts";

/**
 * Matches add(add(h, mul(h, s)), b), either operand order of each add and mul, where the plain
 * LayerNorm h is read only by that add and mul, the inner add and the mul only by the outer add,
 * none of them is an entry output or labelled, and s and b are [B, 1, C] for h [B, T, C]. The outer
 * add becomes the LayerNorm (its id, span and label); the rest is left for eliminate-dead-code.
 */
export const fuseModulation: Pass = {
  name: "fuse-modulation",
  summary: "Fold the AdaLN modulation h + h·s + b into the LayerNorm h it reads (one pass instead of four)",
  run(module) {
    const node = (id: number) => module.nodes[id]!, inner = absorbable(module);
    const isAdd = (n: Node) => isOp(n, Op.Binary) && n.params.fn === "add";
    /** The other operand of a two-input node when one of them is `id`. */
    const other = (n: Node, id: number) =>
      n.inputs[0] === id ? n.inputs[1]! : n.inputs[1] === id ? n.inputs[0]! : undefined;
    let changed = false;
    const nodes = module.nodes.map((a): Node => {
      if (!isAdd(a)) return a;
      for (const pId of a.inputs) {
        const p = node(pId), bId = other(a, pId)!;
        if (!isAdd(p) || !inner(p, 1)) continue;
        for (const hId of p.inputs) {
          const h = node(hId), m = node(other(p, hId)!);
          if (!isOp(h, Op.LayerNorm) || h.inputs.length !== 1 || !inner(h, 2)) continue;
          if (!isOp(m, Op.Binary) || m.params.fn !== "mul" || !inner(m, 1)) continue;
          const sId = other(m, hId);
          if (sId === undefined || !modulates(h, node(sId)) || !modulates(h, node(bId))) continue;
          changed = true;
          return { ...a, op: Op.LayerNorm, params: h.params, inputs: [h.inputs[0]!, sId, bId] };
        }
      }
      return a;
    });
    return changed ? { ...module, nodes } : module;
  },
};

/** Whether t is [B, 1, C] for h [B, T, C] (the same B and C). */
function modulates(h: Node, t: Node): boolean {
  const hs = h.type!.shape, ts = t.type!.shape;
  return hs.length === 3 && ts.length === 3 && ts[0] === hs[0] && ts[1] === 1 && ts[2] === hs[2] &&
    t.type!.dtype === "f32";
}
