/**
 * @file Renders each IR op as a kernel call with static sizes; one table entry per op. The same table
 * serves the JS target (`runtime/js/kernels.ts`, `lowrank.ts`) and WebGPU (`runtime/webgpu/kernels.ts`),
 * whose kernels share names and arguments.
 */
import type { Node, TensorType } from "../ir/node.ts";
import { type MaskSpec, Op } from "../ir/ops.ts";
import type { KernelName } from "../../runtime/kernels.ts";
import { broadcastStrides, prod, shapeLit } from "./dims.ts";

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
   * The start of a call to kernel `name`, through the argument list's opening: "K.linear(" on the JS
   * target, "G.linear(gpu, " on WebGPU. Kernels have the same names and arguments on every target
   * (`runtime/kernels.ts`, which both runtimes are checked against).
   */
  fn(name: KernelName): string;
  /** Wraps a host input (a typed array) as the target's tensor value. */
  input(expr: string): string;
}

type RenderRule<O extends Op> = (c: RenderCtx<O>) => string;

const lit = (v: unknown) => JSON.stringify(v);
/** A size or constant argument with its parameter's name, so a reader of the generated code need not count. */
const at = (name: string, v: unknown) => `/*${name}*/ ${v}`;

/** The expression computing each op. Adding an op without a rule is a type error. */
export const renderOp: { readonly [O in Op]: RenderRule<O> } = {
  [Op.Input]: (c) => c.input(`input(${lit(c.node.params.name)})`),
  [Op.Param]: (c) => `weight(${lit(c.node.params.name)})`,
  [Op.LevelIds]: (c) => `${c.fn("levelIds")}${lit(c.node.params.schedule)})`,
  [Op.Gather]: (c) => {
    const [n, ch] = c.ins[0]!.shape;
    return `${c.fn("gather")}${c.arg(0)}, ${at("N", n)}, ${at("C", ch)}, ${c.arg(1)}, ${
      lit(`node %${c.node.id} (gather)`)
    })`;
  },
  [Op.Linear]: (c) => {
    const x = c.ins[0]!.shape;
    const [n, k] = c.ins[1]!.shape;
    return `${c.fn("linear")}${c.arg(0)}, ${at("M", prod(x.slice(0, -1)))}, ${at("K", k)}, ${c.arg(1)}, ${
      at("N", n)
    }, ${c.node.params.bias ? c.arg(2) : "null"}, ${at("act", lit(c.node.params.act))})`;
  },
  [Op.LayerNorm]: (c) =>
    `${c.fn("layerNorm")}${c.arg(0)}, ${at("C", c.out.shape.at(-1))}, ${at("eps", c.node.params.eps)})`,
  [Op.GroupNorm]: (c) => {
    const [b, ch, h, w] = c.ins[0]!.shape;
    const { groups, eps, silu } = c.node.params;
    return `${c.fn("groupNorm")}${c.arg(0)}, ${c.arg(1)}, ${c.arg(2)}, ${at("B", b)}, ${at("C", ch)}, ${
      at("S", prod([h!, w!]))
    }, ${at("groups", groups)}, ${at("eps", eps)}, ${at("silu", silu)})`;
  },
  [Op.L2Normalize]: (c) =>
    `${c.fn("l2Normalize")}${c.arg(0)}, ${at("D", c.out.shape.at(-1))}, ${at("eps", c.node.params.eps)})`,
  [Op.Unary]: (c) => `${c.fn("unary")}${c.arg(0)}, ${lit(c.node.params.fn)})`,
  [Op.Binary]: (c) => {
    const out = c.out.shape;
    const sa = broadcastStrides(c.ins[0]!.shape, out), sb = broadcastStrides(c.ins[1]!.shape, out);
    return `${c.fn("binary")}${c.arg(0)}, ${c.arg(1)}, ${lit(c.node.params.fn)}, ${at("shape", shapeLit(out))}, ${
      at("aStrides", `[${sa}]`)
    }, ${at("bStrides", `[${sb}]`)})`;
  },
  [Op.Scalar]: (c) =>
    `${c.fn("scalar")}${c.arg(0)}, ${lit(c.node.params.fn)}, ${at("value", numberLit(c.node.params.value))})`,
  [Op.Reshape]: (c) => c.arg(0),
  [Op.Permute]: (c) =>
    `${c.fn("permute")}${c.arg(0)}, ${at("shape", shapeLit(c.ins[0]!.shape))}, ${at("perm", lit(c.node.params.perm))})`,
  [Op.Slice]: (c) => {
    const { axis, start, end } = c.node.params;
    const s = c.ins[0]!.shape;
    return `${c.fn("slice")}${c.arg(0)}, ${at("outer", prod(s.slice(0, axis)))}, ${at("size", s[axis])}, ${
      at("inner", prod(s.slice(axis + 1)))
    }, ${at("start", start)}, ${at("end", end)})`;
  },
  [Op.Concat]: (c) => {
    const axis = c.node.params.axis;
    const s = c.out.shape;
    const args = c.ins.map((_, i) => c.arg(i)).join(", ");
    return `${c.fn("concat")}[${args}], ${at("outer", prod(s.slice(0, axis)))}, ${
      at("sizes", lit(c.ins.map((t) => t.shape[axis])))
    }, ${at("inner", prod(s.slice(axis + 1)))})`;
  },
  [Op.Attention]: (c) => exactAttention(c),
  [Op.ExactAttention]: (c) => exactAttention(c),
  [Op.LowRankAttention]: (c) => {
    const [b, h, tq, d] = c.ins[0]!.shape;
    const tk = c.ins[1]!.shape[2], dv = c.ins[2]!.shape[3];
    const { mask, scale, plan } = c.node.params;
    const table = c.hoist(`LR.featureTable(${d}, ${lit(plan.coeffs)}, ${numberLit(scale)})`);
    const ranges = c.hoist(maskRanges(mask, Number(tq), Number(tk)));
    const sizes = mask.kind === "none" ? "null" : lit(mask.schedule.map((n) => n * n));
    const window = mask.kind === "scale_window" ? mask.window : "Infinity";
    const qkv = [0, 1, 2].map((i) => c.arg(i)).join(", ");
    return `${c.fn("lowrankAttention")}${qkv}, ${at("BH", prod([b!, h!]))}, ${at("Tq", tq)}, ${at("Tk", tk)}, ${
      at("D", d)
    }, ${at("Dv", dv)}, ${at("scale", numberLit(scale))}, ${at("sizes", sizes)}, ${at("window", window)}, ${table}, ${
      at("beta", numberLit(plan.beta))
    }, ${ranges})`;
  },
  [Op.LowRankState]: (c) => {
    const [b, h, t, d] = c.ins[0]!.shape;
    const dv = c.ins[1]!.shape[3];
    const { plan, scale, keyNorm } = c.node.params;
    const table = c.hoist(`LR.featureTable(${d}, ${lit(plan.coeffs)}, ${numberLit(scale)})`);
    const prev = c.ins.length === 3 ? c.arg(2) : "null";
    return `${c.fn("lowrankState")}${c.arg(0)}, ${c.arg(1)}, ${prev}, ${at("BH", prod([b!, h!]))}, ${at("T", t)}, ${
      at("D", d)
    }, ${at("Dv", dv)}, ${table}, ${at("keyNorm", numberLit(keyNorm))}, ${lit(where(c))})`;
  },
  [Op.LowRankRead]: (c) => {
    const [b, h, t, d] = c.ins[0]!.shape;
    const dv = (c.ins[1]!.shape[3] as number) - 1;
    const { plan, scale, keyNorm } = c.node.params;
    const table = c.hoist(`LR.featureTable(${d}, ${lit(plan.coeffs)}, ${numberLit(scale)})`);
    const args = `${at("BH", prod([b!, h!]))}, ${at("T", t)}, ${at("D", d)}, ${at("Dv", dv)}, ${
      at("scale", numberLit(scale))
    }, ${table}, ${at("beta", numberLit(plan.beta))}, ${at("keyNorm", numberLit(keyNorm))}`;
    return `${c.fn("lowrankRead")}${c.arg(0)}, ${c.arg(1)}, ${args}, ${lit(where(c))})`;
  },
  [Op.Conv2d]: (c) => {
    const [b, ci, h, w] = c.ins[0]!.shape;
    const [co, , kh, kw] = c.ins[1]!.shape;
    return `${c.fn("conv2d")}${c.arg(0)}, ${at("B", b)}, ${at("Ci", ci)}, ${at("H", h)}, ${at("W", w)}, ${c.arg(1)}, ${
      at("Co", co)
    }, ${at("kh", kh)}, ${at("kw", kw)}, ${c.arg(2)}, ${at("pad", c.node.params.padding)})`;
  },
  [Op.Interpolate]: (c) => {
    const [b, ch, h, w] = c.ins[0]!.shape;
    const { size, mode } = c.node.params;
    return `${c.fn("interpolate")}${c.arg(0)}, ${at("BC", prod([b!, ch!]))}, ${at("h", h)}, ${at("w", w)}, ${
      at("size", size)
    }, ${lit(mode)})`;
  },
  [Op.Upsample]: (c) => {
    const [b, ch, h, w] = c.ins[0]!.shape;
    return `${c.fn("upsampleNearest")}${c.arg(0)}, ${at("BC", prod([b!, ch!]))}, ${at("h", h)}, ${at("w", w)}, ${
      at("factor", c.node.params.factor)
    })`;
  },
};

/** Exact fused attention (online softmax over each query's key range). */
function exactAttention(c: RenderCtx<Op.Attention | Op.ExactAttention>): string {
  const [b, h, tq, d] = c.ins[0]!.shape;
  const tk = c.ins[1]!.shape[2], dv = c.ins[2]!.shape[3];
  const ranges = c.hoist(maskRanges(c.node.params.mask, Number(tq), Number(tk)));
  const qkv = [0, 1, 2].map((i) => c.arg(i)).join(", ");
  return `${c.fn("attention")}${qkv}, ${at("BH", prod([b!, h!]))}, ${at("Tq", tq)}, ${at("Tk", tk)}, ${at("D", d)}, ${
    at("Dv", dv)
  }, ${at("scale", numberLit(c.node.params.scale))}, ${ranges})`;
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
