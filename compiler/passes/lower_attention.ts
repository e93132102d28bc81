/**
 * @file Pass "lower-attention": every `attention` becomes `exact_attention` (fused online softmax) or
 * `lowrank_attention` (polynomial features, prefix state), chosen per block by a cost model over the
 * node's own scale schedule; each decision records its reason. In generation steps, low-rank blocks
 * with a static bound carry a constant-size state S [B, H, r, Dv+1] instead of the growing KV cache.
 */
import { nodeError } from "../diagnostics.ts";
import { type IrModule, isOp, mapEntries, type Node, type TensorType } from "../ir/node.ts";
import { type AttentionBound, type LowRankPlan, type MaskSpec, Op, type OpParams } from "../ir/ops.ts";
import { expPoly, MAX_DEGREE, rank, smallestDegree } from "../lowrank/poly.ts";
import type { CompileOptions } from "../options.ts";
import type { Pass } from "../pass.ts";

/** The choice for one attention node (or block), with its numbers. */
export interface Decision {
  readonly kind: "exact" | "lowrank";
  readonly plan?: LowRankPlan;
  readonly reason: string;
  readonly flops: { readonly exact: number; readonly lowrank?: number };
}

/** Number of keys each query sees, summed over queries (one head, one batch row). */
export function visiblePairs(mask: MaskSpec, tq: number, tk: number): number {
  if (mask.kind === "none") return tq * tk;
  const window = mask.kind === "scale_window" ? mask.window : Infinity;
  const sizes = mask.schedule.map((n) => n * n);
  let pairs = 0;
  sizes.forEach((size, s) => {
    const first = Math.max(0, s - window + 1);
    pairs += size * sizes.slice(first, s + 1).reduce((a, b) => a + b, 0);
  });
  return pairs;
}

/** Flops of both paths for one head and batch row: exact 2·pairs·(D + Dv); low-rank features + state. */
export function attentionFlops(mask: MaskSpec, tq: number, tk: number, d: number, dv: number, r?: number) {
  const exact = 2 * visiblePairs(mask, tq, tk) * (d + dv);
  if (r === undefined) return { exact };
  // φ(x): one multiply per monomial (and one for the coefficient); the state update and the read
  // are r × (Dv + 1) multiply-adds per key and per query.
  const lowrank = (tq + tk) * 2 * r + (tq + tk) * 2 * r * (dv + 1);
  return { exact, lowrank };
}

/** Decides one node from its bound, shape and the options. */
export function decide(
  node: Node<Op.Attention>,
  q: TensorType,
  v: TensorType,
  options: Readonly<CompileOptions>,
): Decision {
  const { mask, bound } = node.params;
  const [, , tq, d] = q.shape as number[];
  const tk = tq!, dv = v.shape[3] as number; // decisions are made on self-attention over the schedule
  const beta = Math.max(...(bound?.betaPerHead ?? [Infinity]));
  const base = attentionFlops(mask, tq!, tk, d!, dv);
  if (options.attention === "exact") return { kind: "exact", reason: "forced by --attention exact", flops: base };
  if (!Number.isFinite(beta)) {
    return { kind: "exact", reason: `no bound on the logits (${bound?.how ?? "not analysed"})`, flops: base };
  }
  const poly = options.degree > 0
    ? expPoly(options.family, options.degree, beta)
    : smallestDegree(options.family, beta, options.eps);
  if (!poly) {
    return {
      kind: "exact",
      reason: `β = ${fmt(beta)} needs a ${options.family} degree > ${MAX_DEGREE} for ε = ${options.eps}, ` +
        `and rank C(${d}+${MAX_DEGREE}, ${MAX_DEGREE}) = ${sci(rank(d!, MAX_DEGREE))} already exceeds the ${tk} keys`,
      flops: base,
    };
  }
  const r = rank(d!, poly.degree);
  const flops = attentionFlops(mask, tq!, tk, d!, dv, r);
  const plan: LowRankPlan = {
    family: poly.family,
    degree: poly.degree,
    rank: r,
    beta,
    eps: options.eps,
    coeffs: poly.coeffs,
    relError: poly.boundRelError,
  };
  const rankText = r > 1e6 ? sci(r) : String(r);
  const numbers = `degree ${poly.degree}, rank C(${d}+${poly.degree}, ${poly.degree}) = ${rankText}; ${
    sci(flops.lowrank!)
  } vs ${sci(flops.exact)} exact flops per head`;
  if (options.attention === "lowrank") {
    return { kind: "lowrank", plan, reason: `forced by --attention lowrank (${numbers})`, flops };
  }
  if (poly.boundRelError > options.eps) {
    return {
      kind: "exact",
      reason: `--degree ${poly.degree} misses ε = ${options.eps} on [−β, β] (bound ${sci(poly.boundRelError)})`,
      flops,
    };
  }
  if (flops.lowrank! >= flops.exact) {
    const keys = Math.round(visiblePairs(mask, tq!, tk) / tq!);
    return {
      kind: "exact",
      reason: `low-rank costs more: ${numbers} (rank ${rankText} vs ${keys} keys per query on average)`,
      flops,
    };
  }
  return {
    kind: "lowrank",
    plan,
    reason: `low-rank is ${(flops.exact / flops.lowrank!).toFixed(1)}× cheaper: ${numbers}`,
    flops,
  };
}

function fmt(x: number): string {
  return Number(x.toPrecision(4)).toString();
}

function sci(x: number): string {
  return x.toExponential(2);
}

/** Block identity shared by an attention node's copies in `forward` and the `step_s` entries: q's label. */
function groupOf(node: Node, nodes: readonly Node[]): string | undefined {
  return nodes[node.inputs[0]!]!.label;
}

/** Lowers every attention node; see the file comment. */
export const lowerAttention: Pass = {
  name: "lower-attention",
  summary: "Lower attention to exact or low-rank kernels by bound and cost; steps keep a low-rank state",
  run(module, ctx) {
    const byGroup = new Map<string, Decision>();
    const decisions = new Map<number, Decision>();
    // Primary nodes first: those over a whole schedule (teacher-forced), whose cost the model sees.
    const attention = module.nodes.filter((n): n is Node<Op.Attention> => isOp(n, Op.Attention));
    const primary = attention.filter((n) => n.params.mask.kind !== "none");
    for (const n of [...primary, ...attention.filter((n) => n.params.mask.kind === "none")]) {
      const group = groupOf(n, module.nodes);
      const shared = group !== undefined ? byGroup.get(group) : undefined;
      const d = shared ?? decide(n, module.nodes[n.inputs[0]!]!.type!, module.nodes[n.inputs[2]!]!.type!, ctx.options);
      if (group !== undefined && !shared) byGroup.set(group, d);
      decisions.set(n.id, d);
      if (ctx.options.attention === "lowrank" && d.kind === "exact" && !d.reason.startsWith("forced")) {
        ctx.report(nodeError("lowrank-impossible", `Cannot lower this attention to low-rank: ${d.reason}`, n, [
          {
            message:
              "Pass --var so τ is read from the checkpoint, --calibrate N to measure it, or use --attention auto",
          },
        ]));
      }
    }
    return rewrite(module, decisions);
  },
};

/** Applies the decisions: new ops in place, and the state form in generation steps. */
function rewrite(module: IrModule, decisions: ReadonlyMap<number, Decision>): IrModule {
  const nodes: Node[] = [...module.nodes];
  const entries: Record<string, Record<string, number>> = structuredClone(module.entries) as Record<
    string,
    Record<string, number>
  >;
  for (const [id, d] of decisions) {
    const n = nodes[id] as Node<Op.Attention>;
    const bound = n.params.bound as AttentionBound;
    if (d.kind === "exact") {
      nodes[id] = { ...n, op: Op.ExactAttention, params: { ...n.params, reason: d.reason } } as Node;
      continue;
    }
    const state = stateForm(n, nodes, entries, d.plan!, bound);
    if (state) continue;
    nodes[id] = {
      ...n,
      op: Op.LowRankAttention,
      params: { ...n.params, bound, plan: d.plan!, reason: d.reason },
    } as Node;
  }
  return reorder({ ...module, nodes, entries });
}

/**
 * In a step entry, `attention(q, concat([k_i, k]), concat([v_i, v]))` over the KV cache becomes
 * `lowrank_read(q, lowrank_state(k, v, S_i))` with the state S_i carried between steps instead.
 * Only for static bounds: the state keeps no keys, so a guard failure could not fall back to exact.
 */
function stateForm(
  n: Node<Op.Attention>,
  nodes: Node[],
  entries: Record<string, Record<string, number>>,
  plan: LowRankPlan,
  bound: AttentionBound,
): boolean {
  if (n.params.mask.kind !== "none" || !bound.source.startsWith("static") || !Number.isFinite(bound.kNorm)) {
    return false;
  }
  const entry = Object.entries(entries).find(([, outs]) => Object.values(outs).includes(n.inputs[1]!));
  if (!entry) return false;
  const [name, outs] = entry;
  const kName = Object.keys(outs).find((k) => outs[k] === n.inputs[1]);
  const vName = Object.keys(outs).find((k) => outs[k] === n.inputs[2]);
  if (!kName?.startsWith("k_") || !vName?.startsWith("v_")) return false;
  const [kNew, vNew, prev] = newKeys(nodes, n.inputs[1]!, n.inputs[2]!);
  if (kNew === undefined || vNew === undefined) return false;
  const stateName = `s_${kName.slice(2)}`;
  const [b, h] = nodes[n.inputs[0]!]!.type!.shape;
  const dv = nodes[n.inputs[2]!]!.type!.shape[3] as number;
  const stateType: TensorType = { dtype: "f32", shape: [b!, h!, plan.rank, dv + 1] };
  const ins: number[] = [kNew, vNew];
  if (prev) {
    const input = {
      ...nodes[prev]!,
      id: nodes.length,
      params: { name: stateName, dtype: "f32", shape: stateType.shape },
      type: stateType,
    } as Node;
    nodes.push(input);
    ins.push(input.id);
  }
  const guard = { scale: n.params.scale, plan, keyNorm: bound.kNorm };
  const stateNode = {
    id: nodes.length,
    op: Op.LowRankState,
    params: { ...guard, stateName } satisfies OpParams[Op.LowRankState],
    inputs: ins,
    type: stateType,
    span: n.span,
    ...(n.trace ? { trace: n.trace } : {}),
  } as Node;
  nodes.push(stateNode);
  const read: OpParams[Op.LowRankRead] = guard;
  nodes[n.id] = { ...n, op: Op.LowRankRead, params: read, inputs: [n.inputs[0]!, stateNode.id] } as Node;
  delete outs[kName], delete outs[vName];
  outs[stateName] = stateNode.id;
  entries[name] = outs;
  return true;
}

/** k = concat([cache input, k_new]) (or k_new itself at the first scale): the new keys and the cache input. */
function newKeys(
  nodes: readonly Node[],
  k: number,
  v: number,
): [number | undefined, number | undefined, number | undefined] {
  const kn = nodes[k]!, vn = nodes[v]!;
  if (kn.op !== Op.Concat) return [k, v, undefined];
  const [kc, knew] = kn.inputs, [, vnew] = vn.inputs;
  const cache = nodes[kc!]!;
  if (kn.inputs.length !== 2 || vn.op !== Op.Concat || cache.op !== Op.Input) return [undefined, undefined, undefined];
  return [knew, vnew, kc];
}

/** Appended nodes (state inputs and updates) are moved before their first use: a stable topological order. */
function reorder(module: IrModule): IrModule {
  const order: number[] = [];
  const placed = new Set<number>();
  for (let root = 0; root < module.nodes.length; root++) {
    const stack: [number, boolean][] = [[root, false]];
    while (stack.length > 0) {
      const [id, expanded] = stack.pop()!;
      if (placed.has(id)) continue;
      if (expanded) {
        placed.add(id);
        order.push(id);
        continue;
      }
      stack.push([id, true]);
      for (const i of module.nodes[id]!.inputs) if (!placed.has(i)) stack.push([i, false]);
    }
  }
  const position = new Map(order.map((id, i) => [id, i]));
  const nodes = order.map((id, i) => ({
    ...module.nodes[id]!,
    id: i,
    inputs: module.nodes[id]!.inputs.map((x) => position.get(x)!),
  }));
  return { ...module, nodes, entries: mapEntries(module, (v) => position.get(v)!) };
}
