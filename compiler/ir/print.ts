/** @file Stable text form of the IR: the format of golden tests and `--print-ir-after`. */
import type { IrModule, Node } from "./node.ts";
import { type LowRankPlan, type MaskSpec, Op, type OpParams } from "./ops.ts";

/** Options for printing. */
export interface PrintOptions {
  /** Append `// file:line:col` to each node. */
  readonly spans?: boolean;
}

/** Prints a module: one line per node, deterministic. */
export function printModule(module: IrModule, options: PrintOptions = {}): string {
  const lines = [`module ${JSON.stringify(module.name)} {`];
  for (const node of module.nodes) {
    const type = node.type ? ` : ${node.type.dtype}[${node.type.shape.join(",")}]` : "";
    const label = node.label ? `  # ${node.label}` : "";
    const where = options.spans ? `  // ${node.span.file}:${node.span.line}:${node.span.column}` : "";
    const args = node.inputs.map((i) => `%${i}`).join(", ");
    const params = printParams(node);
    lines.push(`  %${node.id} = ${node.op}${params}${args ? " " + args : ""}${type}${label}${where}`);
  }
  for (const [entry, outputs] of Object.entries(module.entries)) {
    const outs = Object.entries(outputs).map(([k, v]) => `${k}=%${v}`).join(", ");
    lines.push(`  entry ${entry}(${outs})`);
  }
  lines.push("}");
  return lines.join("\n");
}

function printParams(node: Node): string {
  const p = node.params as unknown as Record<string, unknown>;
  switch (node.op) {
    case Op.Attention:
    case Op.ExactAttention:
    case Op.LowRankAttention: {
      const a = node.params as OpParams[Op.LowRankAttention];
      const bound = a.bound ? `, beta=${num(Math.max(...a.bound.betaPerHead))} (${a.bound.source})` : "";
      return `{scale=${num(a.scale)}, mask=${printMask(a.mask)}${bound}${a.plan ? plan(a.plan) : ""}}`;
    }
    case Op.LowRankState:
    case Op.LowRankRead: {
      const a = node.params as OpParams[Op.LowRankState];
      const name = a.stateName ? `, state=${JSON.stringify(a.stateName)}` : "";
      return `{scale=${num(a.scale)}${plan(a.plan)}, keyNorm=${num(a.keyNorm)}${name}}`;
    }
  }
  const keys = Object.keys(p).sort();
  if (keys.length === 0) return "";
  return `{${keys.map((k) => `${k}=${printValue(p[k])}`).join(", ")}}`;
}

function plan(p: LowRankPlan): string {
  return `, ${p.family} g=${p.degree} r=${p.rank} beta=${num(p.beta)}`;
}

function num(x: number): string {
  return Number.isFinite(x) ? Number(x.toPrecision(6)).toString() : String(x);
}

function printMask(m: MaskSpec): string {
  switch (m.kind) {
    case "none":
      return "none";
    case "block_causal":
      return `block_causal(${m.schedule.join(",")})`;
    case "scale_window":
      return `scale_window(${m.window}; ${m.schedule.join(",")})`;
    default:
      return m satisfies never;
  }
}

function printValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.join(",")}]`;
  if (typeof v === "string") return JSON.stringify(v);
  return String(v);
}
