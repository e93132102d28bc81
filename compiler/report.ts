/**
 * @file The attention report: per block, the paper's quantity R and R/√ln n, β and its source, the
 * polynomial, rank, predicted error, flops of both paths, decision and reason. Written by `compile`
 * (report.json, report.md) and printed by `explain`.
 */
import type { IrModule, Node } from "./ir/node.ts";
import { type BoundSource, type LowRankPlan, type MaskSpec, Op, type OpParams } from "./ir/ops.ts";
import { paperRankBound } from "./lowrank/poly.ts";
import { attentionFlops } from "./passes/lower_attention.ts";

/** Summary of a compiled model (also written as report.json). */
export interface CompileReport {
  readonly name: string;
  readonly spec: string;
  readonly target: string;
  readonly nodes: number;
  readonly parameters: { readonly var: number; readonly vae: number };
  readonly tensors: { readonly var: number; readonly vae: number };
  readonly passes: readonly { name: string; ms: number }[];
  /** Per attention block: bound, polynomial, cost and decision. */
  readonly attention: readonly AttentionRow[];
}

/** One row: an attention block as lowered for its whole schedule (teacher-forced form). */
export interface AttentionRow {
  readonly block: string;
  readonly where: string;
  readonly heads: number;
  readonly headDim: number;
  readonly keys: number;
  readonly mask: string;
  /** The paper's R = √(s·d)·max(‖Q‖∞, ‖K‖∞) and R/√ln n (n = keys). */
  readonly R: number;
  readonly RoverSqrtLogN: number;
  readonly beta: readonly number[];
  readonly source: BoundSource | "unanalysed";
  readonly how: string;
  readonly decision: "exact" | "lowrank";
  readonly family?: string;
  readonly degree?: number;
  readonly rank?: number;
  readonly paperRankBound?: number;
  readonly relError?: number;
  /** 2ε/(1−ε): the output error bound per unit of ‖V‖∞. */
  readonly errorFactor?: number;
  /** 2ε/(1−ε)·‖V‖∞ for the low-rank path (per output entry); Infinity when ‖V‖∞ is not bounded. */
  readonly predictedError?: number;
  /** ‖V‖∞ bound used for predictedError. */
  readonly vAbsMax?: number;
  readonly flops: { readonly exact: number; readonly lowrank?: number };
  readonly reason: string;
  /** How the generation steps run this block: KV cache (exact), low-rank state, or low-rank over the cache. */
  readonly steps: string;
}

type Lowered = Node<Op.ExactAttention> | Node<Op.LowRankAttention>;

/** Rows for every primary attention node (those over a whole schedule, or unlabelled ones). */
export function attentionReport(module: IrModule): AttentionRow[] {
  const nodes = module.nodes;
  const lowered = nodes.filter((n): n is Lowered => n.op === Op.ExactAttention || n.op === Op.LowRankAttention);
  const stateBlocks = new Set(
    nodes.filter((n) => n.op === Op.LowRankRead).map((n) => nodes[n.inputs[0]!]!.label).filter((l) => l !== undefined),
  );
  const copies = new Map<string, number>();
  for (const n of [...lowered, ...nodes.filter((n) => n.op === Op.LowRankRead)]) {
    const l = nodes[n.inputs[0]!]!.label;
    if (l) copies.set(l, (copies.get(l) ?? 0) + 1);
  }
  const seen = new Set<string>();
  const rows: AttentionRow[] = [];
  for (const n of lowered) {
    const label = nodes[n.inputs[0]!]!.label;
    const block = label?.replace(/\.q$/, "") ?? `attention %${n.id}`;
    if (seen.has(block)) continue;
    if (
      label && n.params.mask.kind === "none" &&
      lowered.some((m) => m.params.mask.kind !== "none" && nodes[m.inputs[0]!]!.label === label)
    ) continue;
    seen.add(block);
    const inSteps = (copies.get(label ?? "") ?? 0) > 1;
    rows.push(row(n, block, nodes, inSteps ? (stateBlocks.has(label!) ? "state" : "cache") : "none"));
  }
  return rows;
}

function row(n: Lowered, block: string, nodes: readonly Node[], steps: "state" | "cache" | "none"): AttentionRow {
  const [, h, tq, d] = nodes[n.inputs[0]!]!.type!.shape as number[];
  const tk = nodes[n.inputs[1]!]!.type!.shape[2] as number, dv = nodes[n.inputs[2]!]!.type!.shape[3] as number;
  const bound = n.params.bound;
  const scale = Math.abs(n.params.scale);
  const R = bound ? Math.sqrt(scale * d!) * Math.max(bound.qAbsMax, bound.kAbsMax) : Infinity;
  const plan: LowRankPlan | undefined = n.op === Op.LowRankAttention
    ? (n.params as OpParams[Op.LowRankAttention]).plan
    : undefined;
  const flops = attentionFlops(n.params.mask, tq!, tk, d!, dv, plan?.rank);
  const eps = plan?.relError;
  return {
    block,
    where: `${n.span.file}:${n.span.line}:${n.span.column}`,
    heads: h!,
    headDim: d!,
    keys: tk,
    mask: maskText(n.params.mask),
    R,
    RoverSqrtLogN: R / Math.sqrt(Math.log(tk)),
    beta: bound?.betaPerHead ?? [],
    source: bound?.source ?? "unanalysed",
    how: bound?.how ?? "",
    decision: plan ? "lowrank" : "exact",
    ...(plan
      ? {
        family: plan.family,
        degree: plan.degree,
        rank: plan.rank,
        paperRankBound: paperRankBound(d!, plan.degree),
        relError: plan.relError,
        errorFactor: (2 * eps!) / (1 - eps!),
        predictedError: (2 * eps!) / (1 - eps!) * (bound?.vAbsMax ?? Infinity),
        vAbsMax: bound?.vAbsMax ?? Infinity,
      }
      : {}),
    flops,
    reason: n.params.reason,
    steps: steps === "none"
      ? "not part of generation steps"
      : steps === "state"
      ? "low-rank state S [B, H, r, Dv+1] instead of a KV cache"
      : plan
      ? "low-rank over the KV cache (guarded)"
      : "exact over the KV cache",
  };
}

function maskText(m: MaskSpec): string {
  return m.kind === "scale_window" ? `scale_window(${m.window})` : m.kind;
}

const num = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(4)).toString() : "∞");

/** The rows as aligned text (what `varc explain` prints). */
export function explainText(module: IrModule, rows: readonly AttentionRow[]): string {
  const lines = [`attention in ${module.name}: ${rows.length} node${rows.length === 1 ? "" : "s"}`];
  for (const r of rows) {
    const betas = [...new Set(r.beta.map(num))];
    lines.push(
      ``,
      `${r.block} (${r.where}): ${r.heads} heads × d ${r.headDim}, ${r.keys} keys, mask ${r.mask}`,
      `  R = ${num(r.R)}, R/√ln n = ${num(r.RoverSqrtLogN)}; β = ${
        betas.length === 1 ? betas[0] : `[${r.beta.map(num).join(", ")}]`
      } (${r.source}: ${r.how})`,
    );
    if (r.decision === "lowrank") {
      lines.push(
        `  ${r.family} degree ${r.degree}, rank ${r.rank} (paper bound ${
          r.paperRankBound!.toExponential(2)
        }), |P/exp − 1| ≤ ${r.relError!.toExponential(2)}`,
        `  output error ≤ 2ε/(1−ε)·‖V‖∞ = ${r.errorFactor!.toExponential(2)}·‖V‖∞${
          Number.isFinite(r.predictedError!) ? ` = ${num(r.predictedError!)}` : " (‖V‖∞ unbounded without --var)"
        }`,
      );
    }
    const low = r.flops.lowrank !== undefined ? `, low-rank ${r.flops.lowrank.toExponential(2)}` : "";
    lines.push(`  flops per head: exact ${r.flops.exact.toExponential(2)}${low}`);
    lines.push(`  decision: ${r.decision} — ${r.reason}; generation steps: ${r.steps}`);
  }
  return lines.join("\n");
}

/** The rows as a Markdown table (report.md). */
export function explainMarkdown(rows: readonly AttentionRow[]): string {
  const head =
    "| block | keys | R | R/√ln n | β | source | family | g | r | predicted error | exact flops | low-rank flops | decision | reason |";
  const body = rows.map((r) =>
    `| ${r.block} | ${r.keys} | ${num(r.R)} | ${num(r.RoverSqrtLogN)} | ${num(Math.max(...r.beta))} | ${r.source} | ${
      r.family ?? ""
    } | ${r.degree ?? ""} | ${r.rank ?? ""} | ${r.predictedError !== undefined ? num(r.predictedError) : ""} | ${
      r.flops.exact.toExponential(2)
    } | ${r.flops.lowrank?.toExponential(2) ?? ""} | ${r.decision} | ${r.reason.replaceAll("|", "\\|")} |`
  );
  return [head, "|" + "---|".repeat(14), ...body].join("\n");
}
