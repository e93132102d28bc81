/**
 * @file Public compiler API: spec file in, IR + generated module + report out.
 *
 * ```ts
 * const compiled = await compile("examples/var_tiny_a.var.ts");
 * console.log(compiled.report.parameters.var);
 * ```
 * @module
 */
import type { Backend, Emitted } from "./backends/backend.ts";
import { TARGET_NAMES, TARGETS } from "./targets.ts";
import { parseSpec } from "./dsl/mod.ts";
import { type IrModule, numel } from "./ir/node.ts";
import { Op } from "./ir/ops.ts";
import { type CompileOptions, resolveOptions } from "./options.ts";
import { type PipelineHooks, runPipeline } from "./pass.ts";
import { defaultPipeline } from "./pipeline.ts";
import { applyPlugins, type Plugin } from "./plugin.ts";
import { attentionReport, type CompileReport } from "./report.ts";

export { CompileError, formatDiagnostics } from "./diagnostics.ts";
export { type AttentionRow, type CompileReport, explainMarkdown, explainText } from "./report.ts";
export type { Plugin } from "./plugin.ts";

/** Built-in backends by target name (`targets.ts`). */
export const backends: Readonly<Record<string, Backend>> = Object.fromEntries(
  TARGET_NAMES.map((t) => [t, TARGETS[t].backend]),
);

/** A target that no backend of the build serves, built-in or a plugin's (`available`). */
export class UnknownTargetError extends TypeError {
  override name = "UnknownTargetError";
  constructor(readonly target: string, readonly available: readonly string[]) {
    super(`Target "${target}" has no backend in this build (available: ${available.join(", ")})`);
  }
}

/** The result of `compile`. */
export interface Compiled {
  readonly module: IrModule;
  readonly emitted: Emitted;
  readonly report: CompileReport;
}

/** Extra inputs of `compile` that are not code-generation options. */
export interface CompileExtras {
  readonly plugins?: readonly Plugin[];
  readonly hooks?: PipelineHooks;
  /** Spec text to use instead of reading the file (the path still names it in diagnostics). */
  readonly text?: string;
}

/** Reads, checks, lowers and emits a spec. Throws CompileError with spanned diagnostics. */
export async function compile(
  specPath: string,
  partial: Partial<CompileOptions> = {},
  extras: CompileExtras = {},
): Promise<Compiled> {
  const options = resolveOptions(partial);
  const { pipeline, backends: table } = applyPlugins(extras.plugins ?? [], options, defaultPipeline, backends);
  const backend = Object.hasOwn(table, options.target) ? table[options.target] : undefined;
  if (!backend) throw new UnknownTargetError(options.target, Object.keys(table));
  const timings: { name: string; ms: number }[] = [];
  const module = runPipeline(parseSpec(specPath, extras.text), pipeline, options, { ...extras.hooks, timings });
  const emitted = await backend.emit(module, options);
  return { module, emitted, report: report(module, specPath, options.target, timings) };
}

/** Parses and runs the pipeline only (no code generation). */
export function lower(specPath: string, partial: Partial<CompileOptions> = {}, hooks: PipelineHooks = {}): IrModule {
  return runPipeline(parseSpec(specPath), defaultPipeline, resolveOptions(partial), hooks);
}

function report(module: IrModule, spec: string, target: string, passes: { name: string; ms: number }[]): CompileReport {
  const count = { var: 0, vae: 0 }, tensors = { var: 0, vae: 0 };
  for (const n of module.nodes) {
    if (n.op !== Op.Param) continue;
    const p = n.params as { source: "var" | "vae"; shape: number[] };
    count[p.source] += numel(p.shape);
    tensors[p.source] += 1;
  }
  const attention = attentionReport(module);
  return { name: module.name, spec, target, nodes: module.nodes.length, parameters: count, tensors, passes, attention };
}
