/** @file IR nodes and modules: immutable values with source spans. */
import type { SourceSpan } from "../diagnostics.ts";
import type { Dim, DTypeName, Op, OpParams } from "./ops.ts";

/** dtype and shape of a value; "B" is the run-time batch size. */
export interface TensorType {
  readonly dtype: DTypeName;
  readonly shape: readonly Dim[];
}

/** One operation. `id` is its index in `IrModule.nodes`; inputs always have smaller ids. */
export interface Node<O extends Op = Op> {
  readonly id: number;
  readonly op: O;
  readonly params: OpParams[O];
  readonly inputs: readonly number[];
  /** Filled in by infer-shapes; every later pass may rely on it. */
  readonly type?: TensorType;
  /** Where in the spec this node came from. */
  readonly span: SourceSpan;
  /** The DSL call sites that led to it, outermost first (for errors inside library blocks). */
  readonly trace?: readonly SourceSpan[];
  /** Optional human name (`tag()` in the DSL); taps and printed IR use it. */
  readonly label?: string;
}

/** Scalars, lists and nested records describing the model (schedule, vocab, …). */
export type MetaValue = number | string | boolean | readonly MetaValue[] | { readonly [k: string]: MetaValue };

/** Named outputs of one entry point: output name -> node id. */
export type EntryOutputs = Readonly<Record<string, number>>;

/** A whole model: nodes in topological order, entry points with named outputs, metadata. */
export interface IrModule {
  readonly name: string;
  readonly nodes: readonly Node[];
  /** Entry points (`forward`, `step_3`, `decode`, …), each computing its outputs from its inputs. */
  readonly entries: Readonly<Record<string, EntryOutputs>>;
  readonly meta: Readonly<Record<string, MetaValue>>;
  /** Glob-like patterns (`encoder.*`) of checkpoint tensors the model may ignore. */
  readonly optionalWeights: readonly string[];
  /** Spec span of the `model(...)` call. */
  readonly span: SourceSpan;
}

/** Narrows a node to one op. */
export function isOp<O extends Op>(node: Node, op: O): node is Node<O> {
  return node.op === op;
}

/** Number of elements of a static shape, with B taken as `batch`. */
export function numel(shape: readonly Dim[], batch = 1): number {
  return shape.reduce<number>((n, d) => n * (d === "B" ? batch : d), 1);
}

/** Keeps the nodes whose ids pass `keep`, renumbered densely; `redirect` maps dropped ids to kept ones. */
export function compact(
  module: IrModule,
  keep: (id: number) => boolean,
  redirect = new Map<number, number>(),
): IrModule {
  const renumber = new Map<number, number>();
  const nodes: Node[] = [];
  const target = (i: number) => renumber.get(redirect.get(i) ?? i)!;
  for (const node of module.nodes) {
    if (!keep(node.id)) continue;
    renumber.set(node.id, nodes.length);
    nodes.push({ ...node, id: nodes.length, inputs: node.inputs.map(target) });
  }
  const entries = mapEntries(module, target);
  return { ...module, nodes, entries };
}

/** Applies `f` to every output id of every entry. */
export function mapEntries(module: IrModule, f: (id: number) => number): Record<string, EntryOutputs> {
  return Object.fromEntries(
    Object.entries(module.entries).map(([e, outs]) => [
      e,
      Object.fromEntries(Object.entries(outs).map(([k, v]) => [k, f(v)])),
    ]),
  );
}

/** Every output id of every entry. */
export function allOutputs(module: IrModule): number[] {
  return Object.values(module.entries).flatMap((outs) => Object.values(outs));
}

/**
 * For fusion passes: whether node n is read by exactly `readers` nodes and is neither an entry
 * output nor labelled (a tap), so that its readers may absorb it.
 */
export function absorbable(module: IrModule): (n: Node, readers: number) => boolean {
  const count = new Map<number, number>();
  for (const n of module.nodes) for (const i of n.inputs) count.set(i, (count.get(i) ?? 0) + 1);
  const outputs = new Set(allOutputs(module));
  return (n, readers) => count.get(n.id) === readers && !outputs.has(n.id) && !n.label;
}

/** Ids of the nodes an entry needs, in topological order. */
export function entryNodes(module: IrModule, entry: string): number[] {
  const live = new Set<number>();
  const stack = [...Object.values(module.entries[entry] ?? {})];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (live.has(id)) continue;
    live.add(id);
    stack.push(...module.nodes[id]!.inputs);
  }
  return [...live].sort((a, b) => a - b);
}
