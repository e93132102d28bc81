/** @file Collects IR nodes while a spec is read. */
import type { SourceSpan } from "../diagnostics.ts";
import type { Node } from "../ir/node.ts";
import type { Op, OpParams } from "../ir/ops.ts";
import { TensorRef } from "./values.ts";

/** Appends nodes in creation order, which is a topological order. */
export class GraphBuilder {
  readonly nodes: Node[] = [];
  /** `trace` gives the call sites active when a node is made (outermost first). */
  constructor(readonly trace: () => readonly SourceSpan[] = () => []) {}

  /** Adds a node and returns a reference to it. */
  add<O extends Op>(op: O, params: OpParams[O], inputs: readonly TensorRef[], span: SourceSpan): TensorRef {
    const id = this.nodes.length;
    const trace = this.trace();
    this.nodes.push(
      { id, op, params, inputs: inputs.map((t) => t.id), span, ...(trace.length ? { trace } : {}) } as Node,
    );
    return new TensorRef(id);
  }

  /** Gives a node a label (the last label wins). */
  label(t: TensorRef, label: string): void {
    this.nodes[t.id] = { ...this.nodes[t.id]!, label };
  }
}
