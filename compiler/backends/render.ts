/**
 * @file Renders each IR op as a kernel call with static sizes; one table entry per op. The same table
 * serves the JS target (`runtime/js/kernels.ts`, `lowrank.ts`) and WebGPU (`runtime/webgpu/kernels.ts`),
 * whose kernels share names and argument records (`runtime/kernels.ts`): each rule gives every field
 * of its kernel's record, checked against the contract's `KernelArgs`.
 */
import type { Node, TensorType } from "../ir/node.ts";
import { type MaskSpec, Op } from "../ir/ops.ts";
import type { KernelArgs, KernelName } from "../../runtime/kernels.ts";
import { broadcastStrides, prod, shapeLit } from "./dims.ts";

/**
 * Each field of kernel `K`'s argument record (`runtime/kernels.ts`) as a JS expression: a rule that
 * leaves a field out or names one the contract lacks does not type-check.
 */
export type ArgExprs<K extends KernelName> = { readonly [P in keyof KernelArgs<K>]-?: string | number };

/** Everything a render rule sees: the node, its inputs' types, value names, and hoisting. */
export interface RenderCtx<O extends Op> {
  readonly node: Node<O>;
  readonly ins: readonly TensorType[];
  readonly out: TensorType;
  /** JS name of input i. */
  arg(i: number): string;
  /** Hoists a constant host expression to module scope; returns its name. */
  hoist(expr: string): string;
  /**
   * A call of kernel `kernel` with its argument record, fields in the order given (the contract's):
   * `K.linear({ x: v3, M: 2, ... })` on the JS target, `G.linear(gpu, { x: v3, ... })` on WebGPU.
   */
  call<K extends KernelName>(kernel: K, args: ArgExprs<K>): string;
  /** Wraps a host input (a typed array) as the target's tensor value. */
  input(expr: string): string;
}

type RenderRule<O extends Op> = (c: RenderCtx<O>) => string;

/** An argument record as JS source: `{ x: v3, M: 2, B }` (a field whose value is its name, shorthand). */
export function record(args: Readonly<Record<string, string | number>>): string {
  return `{ ${Object.entries(args).map(([k, v]) => String(v) === k ? k : `${k}: ${v}`).join(", ")} }`;
}

const lit = (v: unknown) => JSON.stringify(v);

/** The expression computing each op. Adding an op without a rule is a type error. */
export const renderOp: { readonly [O in Op]: RenderRule<O> } = {
  [Op.Input]: (c) => c.input(`input(${lit(c.node.params.name)})`),
  [Op.Param]: (c) => `weight(${lit(c.node.params.name)})`,
  [Op.LevelIds]: (c) => c.call("levelIds", { schedule: lit(c.node.params.schedule) }),
  [Op.Gather]: (c) => {
    const [n, ch] = c.ins[0]!.shape;
    return c.call("gather", {
      table: c.arg(0),
      N: n!,
      C: ch!,
      idx: c.arg(1),
      what: lit(`node %${c.node.id} (gather)`),
    });
  },
  [Op.Linear]: (c) => {
    const x = c.ins[0]!.shape;
    const [n, k] = c.ins[1]!.shape;
    const b = c.node.params.bias ? c.arg(2) : "null";
    const act = lit(c.node.params.act);
    return c.call("linear", { x: c.arg(0), M: prod(x.slice(0, -1)), K: k!, w: c.arg(1), N: n!, b, act });
  },
  [Op.LayerNorm]: (c) => {
    const mod = c.node.inputs.length === 3, x = c.out.shape;
    return c.call("layerNorm", {
      x: c.arg(0),
      C: x.at(-1)!,
      eps: c.node.params.eps,
      s: mod ? c.arg(1) : "null",
      b: mod ? c.arg(2) : "null",
      T: mod ? x.at(-2)! : 1,
    });
  },
  [Op.GroupNorm]: (c) => {
    const [b, ch, h, w] = c.ins[0]!.shape;
    const { groups, eps, silu } = c.node.params;
    return c.call("groupNorm", {
      x: c.arg(0),
      w: c.arg(1),
      b: c.arg(2),
      B: b!,
      C: ch!,
      S: prod([h!, w!]),
      groups,
      eps,
      silu: lit(silu),
    });
  },
  [Op.L2Normalize]: (c) => c.call("l2Normalize", { x: c.arg(0), D: c.out.shape.at(-1)!, eps: c.node.params.eps }),
  [Op.Unary]: (c) => c.call("unary", { x: c.arg(0), fn: lit(c.node.params.fn) }),
  [Op.Binary]: (c) => {
    const out = c.out.shape;
    const sa = broadcastStrides(c.ins[0]!.shape, out), sb = broadcastStrides(c.ins[1]!.shape, out);
    if (c.ins.length === 3) {
      return c.call("addMul", {
        a: c.arg(0),
        b: c.arg(1),
        c: c.arg(2),
        shape: shapeLit(out),
        aStrides: `[${sa}]`,
        bStrides: `[${sb}]`,
        cStrides: `[${broadcastStrides(c.ins[2]!.shape, out)}]`,
      });
    }
    return c.call("binary", {
      a: c.arg(0),
      b: c.arg(1),
      fn: lit(c.node.params.fn),
      shape: shapeLit(out),
      aStrides: `[${sa}]`,
      bStrides: `[${sb}]`,
    });
  },
  [Op.Scalar]: (c) =>
    c.call("scalar", { x: c.arg(0), fn: lit(c.node.params.fn), value: numberLit(c.node.params.value) }),
  [Op.Reshape]: (c) => c.arg(0),
  [Op.Heads]: (c) => {
    const [b, t, w] = c.ins[0]!.shape, { start, heads, dim, eps } = c.node.params;
    return c.call("heads", {
      x: c.arg(0),
      rows: prod([b!, t!]),
      T: t!,
      W: w!,
      start,
      H: heads,
      D: dim,
      eps: eps === null ? "null" : eps,
      tau: c.ins.length === 2 ? c.arg(1) : "null",
    });
  },
  [Op.Permute]: (c) =>
    c.call("permute", { x: c.arg(0), shape: shapeLit(c.ins[0]!.shape), perm: lit(c.node.params.perm) }),
  [Op.Slice]: (c) => {
    const { axis, start, end } = c.node.params;
    const s = c.ins[0]!.shape;
    return c.call("slice", {
      x: c.arg(0),
      outer: prod(s.slice(0, axis)),
      size: s[axis]!,
      inner: prod(s.slice(axis + 1)),
      start,
      end,
    });
  },
  [Op.Concat]: (c) => {
    const axis = c.node.params.axis;
    const s = c.out.shape;
    return c.call("concat", {
      xs: `[${c.ins.map((_, i) => c.arg(i)).join(", ")}]`,
      outer: prod(s.slice(0, axis)),
      sizes: lit(c.ins.map((t) => t.shape[axis])),
      inner: prod(s.slice(axis + 1)),
    });
  },
  [Op.Attention]: (c) => exactAttention(c),
  [Op.ExactAttention]: (c) => exactAttention(c),
  [Op.LowRankAttention]: (c) => {
    const { mask, scale, plan } = c.node.params, qkv = attentionOperands(c);
    return c.call("lowrankAttention", {
      ...qkv,
      scale: numberLit(scale),
      sizes: mask.kind === "none" ? "null" : lit(mask.schedule.map((n) => n * n)),
      window: mask.kind === "scale_window" ? mask.window : "Infinity",
      table: c.hoist(`LR.featureTable(${qkv.D}, ${lit(plan.coeffs)}, ${numberLit(scale)})`),
      beta: numberLit(plan.beta),
      exactRanges: c.hoist(maskRanges(mask, Number(qkv.Tq), Number(qkv.Tk))),
    });
  },
  [Op.LowRankState]: (c) => {
    const [b, h, t, d] = c.ins[0]!.shape;
    const { plan, scale, keyNorm } = c.node.params;
    return c.call("lowrankState", {
      k: c.arg(0),
      v: c.arg(1),
      prev: c.ins.length === 3 ? c.arg(2) : "null",
      BH: prod([b!, h!]),
      T: t!,
      D: d!,
      Dv: c.ins[1]!.shape[3]!,
      table: c.hoist(`LR.featureTable(${d}, ${lit(plan.coeffs)}, ${numberLit(scale)})`),
      keyNorm: numberLit(keyNorm),
      what: lit(where(c)),
    });
  },
  [Op.LowRankRead]: (c) => {
    const [b, h, t, d] = c.ins[0]!.shape;
    const { plan, scale, keyNorm } = c.node.params;
    return c.call("lowrankRead", {
      q: c.arg(0),
      state: c.arg(1),
      BH: prod([b!, h!]),
      T: t!,
      D: d!,
      Dv: (c.ins[1]!.shape[3] as number) - 1,
      scale: numberLit(scale),
      table: c.hoist(`LR.featureTable(${d}, ${lit(plan.coeffs)}, ${numberLit(scale)})`),
      beta: numberLit(plan.beta),
      keyNorm: numberLit(keyNorm),
      what: lit(where(c)),
    });
  },
  [Op.Conv2d]: (c) => {
    const [b, ci, h, w] = c.ins[0]!.shape;
    const [co, , kh, kw] = c.ins[1]!.shape;
    return c.call("conv2d", {
      x: c.arg(0),
      B: b!,
      Ci: ci!,
      H: h!,
      W: w!,
      w: c.arg(1),
      Co: co!,
      kh: kh!,
      kw: kw!,
      b: c.arg(2),
      pad: c.node.params.padding,
    });
  },
  [Op.Interpolate]: (c) => {
    const [b, ch, h, w] = c.ins[0]!.shape;
    const { size, mode } = c.node.params;
    return c.call("interpolate", { x: c.arg(0), BC: prod([b!, ch!]), h: h!, w: w!, size, mode: lit(mode) });
  },
  [Op.Upsample]: (c) => {
    const [b, ch, h, w] = c.ins[0]!.shape;
    return c.call("upsampleNearest", { x: c.arg(0), BC: prod([b!, ch!]), h: h!, w: w!, factor: c.node.params.factor });
  },
};

/** Exact fused attention (online softmax over each query's key range). */
function exactAttention(c: RenderCtx<Op.Attention | Op.ExactAttention>): string {
  const qkv = attentionOperands(c);
  return c.call("attention", {
    ...qkv,
    scale: numberLit(c.node.params.scale),
    ranges: c.hoist(maskRanges(c.node.params.mask, Number(qkv.Tq), Number(qkv.Tk))),
  });
}

/** The fields every attention kernel takes: q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, Dv]. */
function attentionOperands(c: RenderCtx<Op.Attention | Op.ExactAttention | Op.LowRankAttention>) {
  const [b, h, tq, d] = c.ins[0]!.shape;
  const tk = c.ins[1]!.shape[2]!, dv = c.ins[2]!.shape[3]!;
  return { q: c.arg(0), k: c.arg(1), v: c.arg(2), BH: prod([b!, h!]), Tq: tq!, Tk: tk, D: d!, Dv: dv };
}

/** The spec location of a node, for run-time messages. */
function where(c: RenderCtx<Op>): string {
  return `attention at ${c.node.span.file}:${c.node.span.line}:${c.node.span.column}`;
}

function maskRanges(mask: MaskSpec, tq: number, tk: number): string {
  switch (mask.kind) {
    case "none":
      return `K.fullKeyRanges(${tq}, ${tk})`;
    case "block_causal":
      return `K.scaleKeyRanges(${lit(mask.schedule)}, Infinity)`;
    case "scale_window":
      return `K.scaleKeyRanges(${lit(mask.schedule)}, ${mask.window})`;
    default:
      return mask satisfies never;
  }
}

/** A number as JS source, exact for every finite double (and -0). */
export function numberLit(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`internal: non-finite constant ${v} reached code generation`);
  return Object.is(v, -0) ? "-0" : String(v);
}
