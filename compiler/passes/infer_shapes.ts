/** @file Pass "infer-shapes": gives every node a TensorType; shape errors point at the spec. */
import { nodeError, type Note } from "../diagnostics.ts";
import { type IrModule, type Node, numel, type TensorType } from "../ir/node.ts";
import { arity, type Dim, type MaskSpec, Op, type OpParams } from "../ir/ops.ts";
import type { Pass } from "../pass.ts";

/** Thrown by a shape rule; turned into a diagnostic at the node's span. */
export class ShapeError extends Error {
  constructor(message: string, readonly notes: readonly Note[] = []) {
    super(message);
  }
}

type ShapeRule<O extends Op> = (params: OpParams[O], inputs: readonly TensorType[]) => TensorType;

const f32 = (shape: readonly Dim[]): TensorType => ({ dtype: "f32", shape });
const fmt = (s: readonly Dim[]) => `[${s.join(", ")}]`;

/** One rule per op; the type checker keeps this table exhaustive. */
export const shapeRules: { readonly [O in Op]: ShapeRule<O> } = {
  [Op.Input]: (p) => ({ dtype: p.dtype, shape: p.shape }),
  [Op.Param]: (p) => f32(p.shape),
  [Op.LevelIds]: (p) => ({ dtype: "i32", shape: [p.schedule.reduce((a, n) => a + n * n, 0)] }),
  [Op.Gather]: (_, [table, idx]) => {
    expectRank("gather table", table!, 2);
    if (idx!.dtype !== "i32") throw new ShapeError(`Cannot gather with ${idx!.dtype} indices: indices must be i32`);
    return f32([...idx!.shape, table!.shape[1]!]);
  },
  [Op.Linear]: (p, [x, w, b]) => {
    expectRank("linear weight", w!, 2);
    const [n, k] = w!.shape as [number, number];
    const last = x!.shape.at(-1);
    if (last !== k) {
      throw new ShapeError(
        `Cannot apply linear weight ${fmt(w!.shape)} to input ${
          fmt(x!.shape)
        }: input width is ${last}, weight expects ${k}`,
      );
    }
    if (p.bias && (b!.shape.length !== 1 || b!.shape[0] !== n)) {
      throw new ShapeError(`Cannot use bias ${fmt(b!.shape)} with ${n} outputs: bias must be [${n}]`);
    }
    return f32([...x!.shape.slice(0, -1), n]);
  },
  [Op.LayerNorm]: (_, [x]) => x!,
  [Op.GroupNorm]: (p, [x, w, b]) => {
    expectRank("group_norm input", x!, 4);
    const c = x!.shape[1] as number;
    if (c % p.groups !== 0) throw new ShapeError(`Cannot split ${c} channels into ${p.groups} groups`);
    for (const t of [w!, b!]) {
      if (t.shape.length !== 1 || t.shape[0] !== c) {
        throw new ShapeError(`GroupNorm affine parameters must be [${c}], got ${fmt(t.shape)}`);
      }
    }
    return x!;
  },
  [Op.L2Normalize]: (_, [x]) => x!,
  [Op.Unary]: (_, [x]) => x!,
  [Op.Binary]: (p, [a, b, c]) => f32(broadcast(p.fn, a!.shape, c ? broadcast("mul", b!.shape, c.shape) : b!.shape)),
  [Op.Scalar]: (_, [x]) => x!,
  [Op.Reshape]: (p, [x]) => {
    const batchIn = x!.shape.filter((d) => d === "B").length;
    const batchOut = p.shape.filter((d) => d === "B").length;
    if (batchIn !== batchOut || numel(x!.shape) !== numel(p.shape)) {
      throw new ShapeError(
        `Cannot reshape ${fmt(x!.shape)} (${numel(x!.shape)} elements per batch row) to ${fmt(p.shape)} (${
          numel(p.shape)
        })`,
      );
    }
    return { dtype: x!.dtype, shape: p.shape };
  },
  [Op.Heads]: (p, [x]) => {
    const [b, t] = x!.shape;
    return { dtype: "f32", shape: [b!, p.heads, t!, p.dim] };
  },
  [Op.Permute]: (p, [x]) => {
    const r = x!.shape.length;
    const ok = p.perm.length === r && [...p.perm].sort((a, b) => a - b).every((a, i) => a === i);
    if (!ok) throw new ShapeError(`Cannot permute rank-${r} tensor ${fmt(x!.shape)} by ${fmt(p.perm)}`);
    return { dtype: x!.dtype, shape: p.perm.map((a) => x!.shape[a]!) };
  },
  [Op.Slice]: (p, [x]) => {
    const d = axisDim(x!, p.axis);
    if (d === "B") throw new ShapeError(`Cannot slice the batch axis ${p.axis}`);
    if (!(0 <= p.start && p.start < p.end && p.end <= d)) {
      throw new ShapeError(`Cannot slice [${p.start}, ${p.end}) from axis ${p.axis} of size ${d}`);
    }
    const shape = [...x!.shape];
    shape[p.axis] = p.end - p.start;
    return { dtype: x!.dtype, shape };
  },
  [Op.Concat]: (p, xs) => {
    const first = xs[0]!;
    axisDim(first, p.axis);
    let total = 0;
    for (const x of xs) {
      const same = x.shape.length === first.shape.length &&
        x.shape.every((d, i) => i === p.axis || d === first.shape[i]);
      if (!same) throw new ShapeError(`Cannot concat ${fmt(first.shape)} and ${fmt(x.shape)} along axis ${p.axis}`);
      const d = x.shape[p.axis]!;
      if (d === "B") throw new ShapeError(`Cannot concat along the batch axis ${p.axis}`);
      total += d;
    }
    const shape = [...first.shape];
    shape[p.axis] = total;
    return f32(shape);
  },
  [Op.Attention]: (p, ins) => attentionShape(p.mask, ins),
  [Op.ExactAttention]: (p, ins) => attentionShape(p.mask, ins),
  [Op.LowRankAttention]: (p, ins) => attentionShape(p.mask, ins),
  [Op.LowRankState]: (p, [k, v, state]) => {
    const [b, h, , d] = k!.shape;
    const dv = v!.shape[3] as number;
    if (d === undefined) throw new ShapeError(`Expected k of rank 4, got ${fmt(k!.shape)}`);
    const out = f32([b!, h!, p.plan.rank, dv + 1]);
    if (state && fmt(state.shape) !== fmt(out.shape)) {
      throw new ShapeError(`Low-rank state ${fmt(state.shape)} does not match ${fmt(out.shape)}`);
    }
    return out;
  },
  [Op.LowRankRead]: (p, [q, state]) => {
    const [b, h, t] = q!.shape;
    const dv1 = state!.shape[3] as number;
    if (state!.shape[2] !== p.plan.rank) {
      throw new ShapeError(`Low-rank state ${fmt(state!.shape)} has rank ${state!.shape[2]}, expected ${p.plan.rank}`);
    }
    return f32([b!, h!, t!, dv1 - 1]);
  },
  [Op.Conv2d]: (p, [x, w, b]) => {
    expectRank("conv2d input", x!, 4);
    expectRank("conv2d weight", w!, 4);
    const [bx, ci, h, wd] = x!.shape as [Dim, number, number, number];
    const [co, wci, kh, kw] = w!.shape as [number, number, number, number];
    if ([ci, h, wd].includes("B" as never)) {
      throw new ShapeError(`Conv2d input ${fmt(x!.shape)} may hold B only in axis 0`);
    }
    if (h + 2 * p.padding < kh || wd + 2 * p.padding < kw) {
      throw new ShapeError(
        `Cannot convolve ${h}×${wd} (padding ${p.padding}) with a ${kh}×${kw} kernel: the kernel is larger than the padded input`,
      );
    }
    if (ci !== wci) {
      throw new ShapeError(`Cannot convolve ${ci} channels with weight ${fmt(w!.shape)} expecting ${wci}`);
    }
    if (b!.shape.length !== 1 || b!.shape[0] !== co) throw new ShapeError(`Conv2d bias must be [${co}]`);
    return f32([bx, co, h + 2 * p.padding - kh + 1, wd + 2 * p.padding - kw + 1]);
  },
  [Op.Interpolate]: (p, [x]) => {
    expectRank("interpolate input", x!, 4);
    return f32([x!.shape[0]!, x!.shape[1]!, p.size, p.size]);
  },
  [Op.Upsample]: (p, [x]) => {
    expectRank("upsample input", x!, 4);
    const [b, c, h, w] = x!.shape as [Dim, number, number, number];
    if ([c, h, w].includes("B" as never)) {
      throw new ShapeError(`Upsample input ${fmt(x!.shape)} may hold B only in axis 0`);
    }
    return f32([b, c, h * p.factor, w * p.factor]);
  },
};

/** q [B,H,Tq,D], k/v [B,H,Tk,D(v)] -> [B,H,Tq,Dv]; a scale mask needs Tq = Tk = L of its schedule. */
function attentionShape(mask: MaskSpec, [q, k, v]: readonly TensorType[]): TensorType {
  for (const [n, t] of [["q", q!], ["k", k!], ["v", v!]] as const) expectRank(`attention ${n}`, t, 4);
  const [bq, hq, tq, dq] = q!.shape;
  const [bk, hk, tk, dk] = k!.shape;
  const [bv, hv, tv] = v!.shape;
  if (bq !== bk || bk !== bv || hq !== hk || hk !== hv || dq !== dk || tk !== tv) {
    throw new ShapeError(
      `Cannot attend with q ${fmt(q!.shape)}, k ${fmt(k!.shape)}, v ${
        fmt(v!.shape)
      }: batch, heads and q/k head dim must agree, k and v must have the same length`,
    );
  }
  if (mask.kind !== "none") {
    const l = mask.schedule.reduce((a, n) => a + n * n, 0);
    if (tq !== l || tk !== l) {
      throw new ShapeError(`Cannot apply a ${mask.kind} mask over ${l} tokens to ${tq} queries and ${tk} keys`);
    }
  }
  return f32([bq!, hq!, tq!, v!.shape[3]!]);
}

function expectRank(what: string, t: TensorType, rank: number): void {
  if (t.shape.length !== rank) throw new ShapeError(`Expected ${what} of rank ${rank}, got ${fmt(t.shape)}`);
}

function axisDim(t: TensorType, axis: number): Dim {
  const d = t.shape[axis];
  if (d === undefined) throw new ShapeError(`Axis ${axis} is out of range for ${fmt(t.shape)}`);
  return d;
}

/** numpy broadcasting over trailing axes. */
export function broadcast(what: string, a: readonly Dim[], b: readonly Dim[]): Dim[] {
  const r = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new ShapeError(`Cannot ${what} ${fmt(a)} and ${fmt(b)}: axis ${i} has sizes ${x} and ${y}`);
    }
    out.push(x === 1 ? y : x);
  }
  return out;
}

function checkArity(node: Node): string | undefined {
  const want = arity[node.op];
  const n = node.inputs.length;
  if (want === "n") return n >= 1 ? undefined : `Op ${node.op} needs at least one input`;
  const [lo, hi] = typeof want === "number" ? [want, want] : want;
  return n >= lo && n <= hi ? undefined : `Op ${node.op} takes ${lo}..${hi} inputs, got ${n}`;
}

/** Gives every node a TensorType; reports every shape error, not only the first. */
export const inferShapes: Pass = {
  name: "infer-shapes",
  summary: "Assign a dtype and shape to every node; report shape errors at the spec",
  run(module, ctx) {
    const nodes: Node[] = [];
    const failed = new Set<number>();
    for (const node of module.nodes) {
      const bad = checkArity(node);
      if (bad) throw new Error(`internal: ${bad} (node %${node.id})`);
      if (node.inputs.some((i) => failed.has(i))) {
        failed.add(node.id);
        nodes.push(node);
        continue;
      }
      const types = node.inputs.map((i) => nodes[i]!.type!);
      try {
        const rule = shapeRules[node.op] as ShapeRule<Op>;
        nodes.push({ ...node, type: rule(node.params, types) });
      } catch (e) {
        if (!(e instanceof ShapeError)) throw e;
        failed.add(node.id);
        nodes.push(node);
        ctx.report(nodeError("shape-mismatch", e.message, node, e.notes));
      }
    }
    return { ...module, nodes } satisfies IrModule;
  },
};
