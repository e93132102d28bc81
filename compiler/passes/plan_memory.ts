/**
 * @file Pass "plan-memory": per entry, the peak bytes of live tensors (values are freed after their last
 * use, as the generated code does), split into a part that grows with the batch and a fixed part.
 * A tensor that cannot fit in this machine's memory even for one batch row is a compile error at its span;
 * the runtime uses the plan to refuse batches that would not fit, up front.
 */
import { nodeError } from "../diagnostics.ts";
import { entryNodes, type IrModule, type Node } from "../ir/node.ts";
import { Op } from "../ir/ops.ts";
import type { Pass } from "../pass.ts";

/** Peak bytes of one entry: fixed + perRow × (batch rows). */
export interface EntryMemory {
  readonly fixedBytes: number;
  readonly perRowBytes: number;
}

/** Bytes of a node's value as fixed + per batch row. */
function bytesOf(node: Node): { fixed: number; perRow: number } {
  const t = node.type!;
  const n = t.shape.reduce<number>((a, d) => a * (d === "B" ? 1 : d), 1) * 4;
  return t.shape.includes("B") ? { fixed: 0, perRow: n } : { fixed: n, perRow: 0 };
}

/** Last position (in the entry's order) at which each node is read; outputs live to the end. */
export function lastUses(module: IrModule, entry: string, order: readonly number[]): Map<number, number> {
  const last = new Map<number, number>();
  order.forEach((id, i) => {
    for (const input of module.nodes[id]!.inputs) last.set(input, i);
  });
  for (const out of Object.values(module.entries[entry]!)) last.set(out, order.length);
  return last;
}

/** Peak live bytes of one entry (params are checkpoint memory, counted separately). */
export function entryMemory(module: IrModule, entry: string): EntryMemory {
  const order = entryNodes(module, entry);
  const last = lastUses(module, entry, order);
  let fixed = 0, perRow = 0, peakFixed = 0, peakPerRow = 0;
  const release = new Map<number, number[]>();
  order.forEach((id) => {
    const node = module.nodes[id]!;
    if (node.op === Op.Param || node.op === Op.Reshape) return; // views: no new memory
    const at = last.get(id) ?? -1;
    release.set(at, [...(release.get(at) ?? []), id]);
  });
  order.forEach((id, i) => {
    const node = module.nodes[id]!;
    if (node.op !== Op.Param && node.op !== Op.Reshape) {
      const b = bytesOf(node);
      fixed += b.fixed, perRow += b.perRow;
    }
    peakFixed = Math.max(peakFixed, fixed), peakPerRow = Math.max(peakPerRow, perRow);
    for (const dead of release.get(i) ?? []) {
      const b = bytesOf(module.nodes[dead]!);
      fixed -= b.fixed, perRow -= b.perRow;
    }
  });
  return { fixedBytes: peakFixed, perRowBytes: peakPerRow };
}

/** Memory of this machine, when the runtime can tell. */
function machineBytes(): number {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return Infinity;
  }
}

const GiB = 2 ** 30;

/** Records per-entry peaks in `meta.memory`; rejects tensors larger than the machine's memory. */
export const planMemory: Pass = {
  name: "plan-memory",
  summary: "Peak live bytes per entry (fixed + per batch row); reject tensors that cannot fit",
  run(module, ctx) {
    const limit = machineBytes();
    for (const node of module.nodes) {
      const b = bytesOf(node);
      const bytes = b.fixed + b.perRow;
      if (bytes > limit) {
        ctx.report(nodeError(
          "resource-limit",
          `Tensor [${node.type!.shape.join(", ")}] of ${node.op} needs ${
            (bytes / GiB).toFixed(1)
          } GiB for one batch row, more than this machine's ${(limit / GiB).toFixed(1)} GiB`,
          node,
          [{ message: "Use a smaller schedule, width or vocabulary" }],
        ));
      }
    }
    if ("memory" in module.meta) {
      ctx.report(nodeError("reserved-meta", `Model metadata key "memory" is reserved for the compiler's memory plan`, {
        span: module.span,
      }, [{ message: "Rename that meta field" }]));
    }
    const memory = Object.fromEntries(
      Object.keys(module.entries).map((e) => {
        const m = entryMemory(module, e);
        return [e, { fixedBytes: m.fixedBytes, perRowBytes: m.perRowBytes }];
      }),
    );
    return { ...module, meta: { ...module.meta, memory } };
  },
};
