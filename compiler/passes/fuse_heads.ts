/**
 * @file Pass "fuse-heads": the attention prologue of a packed projection, slice → split into heads
 * → (L2-normalise) → (scale per head), becomes one Heads node: its kernel reads each row of D where
 * it lies in the projection and writes it once in [B, H, T, D], instead of four passes over memory.
 */
import { absorbable, isOp, type Node } from "../ir/node.ts";
import { Op } from "../ir/ops.ts";
import type { Pass } from "../pass.ts";

/**
 * Rules, applied until none matches; each absorbs a node read only by the one above it (no other
 * reader, no entry output, no tap label), which keeps its id, span and label:
 *
 * - permute(reshape(slice(x, last axis, s, s + H·D), [B, T, H, D]), [0, 2, 1, 3]) with x [B, T, W]
 *   (or no slice, W = H·D) -> Heads(x) {start s, heads H, dim D};
 * - l2Normalize(Heads without eps or τ) -> the Heads with that eps;
 * - mul(Heads without τ, τ [1, H, 1, 1]) in either order -> the Heads reading τ.
 */
export const fuseHeads: Pass = {
  name: "fuse-heads",
  summary: "Fold slice, head split, L2 normalisation and per-head scale into one Heads node",
  run(module) {
    let out = module;
    for (let changed = true; changed;) {
      changed = false;
      const alone = absorbable(out), node = (id: number) => out.nodes[id]!;
      const nodes = out.nodes.map((n): Node => {
        const fused = fuse(n, node, (m) => alone(m, 1));
        if (fused) changed = true;
        return fused ?? n;
      });
      if (changed) out = { ...out, nodes };
    }
    return out;
  },
};

/** n with the node below it absorbed, or undefined. */
function fuse(n: Node, node: (id: number) => Node, inner: (m: Node) => boolean): Node | undefined {
  if (isOp(n, Op.Permute)) {
    const r = node(n.inputs[0]!);
    if (n.params.perm.join() !== "0,2,1,3" || !isOp(r, Op.Reshape) || !inner(r)) return undefined;
    const [B, T, H, D] = r.type!.shape, src = node(r.inputs[0]!);
    const sliced = isOp(src, Op.Slice) && inner(src) && src.params.axis === 2;
    const x = sliced ? node(src.inputs[0]!) : src, xs = x.type!.shape;
    if (xs.length !== 3 || xs[0] !== B || xs[1] !== T || x.type!.dtype !== "f32") return undefined;
    if (typeof H !== "number" || typeof D !== "number" || (!sliced && xs[2] !== H * D)) return undefined;
    const start = sliced ? src.params.start : 0;
    return { ...n, op: Op.Heads, params: { start, heads: H, dim: D, eps: null }, inputs: [x.id] };
  }
  if (isOp(n, Op.L2Normalize)) {
    const h = node(n.inputs[0]!);
    if (!isOp(h, Op.Heads) || h.params.eps !== null || h.inputs.length !== 1 || !inner(h)) return undefined;
    return { ...n, op: Op.Heads, params: { ...h.params, eps: n.params.eps }, inputs: h.inputs };
  }
  if (isOp(n, Op.Binary) && n.params.fn === "mul" && n.inputs.length === 2) {
    for (const [hId, tId] of [n.inputs, [...n.inputs].reverse()]) {
      const h = node(hId!), tau = node(tId!);
      if (!isOp(h, Op.Heads) || h.inputs.length !== 1 || !inner(h)) continue;
      const ts = tau.type!.shape;
      if (ts.join() !== `1,${h.params.heads},1,1` || tau.type!.dtype !== "f32") continue;
      return { ...n, op: Op.Heads, params: h.params, inputs: [h.inputs[0]!, tau.id] };
    }
  }
  return undefined;
}
