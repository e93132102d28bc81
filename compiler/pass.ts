/** @file Passes, their context, and the runner (verify after each pass, print-ir-after, timing). */
import { CompileError, type Diagnostic } from "./diagnostics.ts";
import type { IrModule } from "./ir/node.ts";
import { printModule } from "./ir/print.ts";
import { verifyModule } from "./ir/verify.ts";
import type { CompileOptions } from "./options.ts";

/** `printIrAfter` names a pass the pipeline does not have (a TypeError: a bad argument). */
export class UnknownPassError extends TypeError {
  override name = "UnknownPassError";
}

/** A transformation from one IR module to another. Keeps no state between runs. */
export interface Pass {
  /** Kebab-case id used in pipelines and `--print-ir-after`, e.g. "infer-shapes". */
  readonly name: string;
  /** One line, shown by `--list-passes`. */
  readonly summary: string;
  run(module: IrModule, ctx: PassContext): IrModule;
}

/** What a pass may touch besides the module. */
export interface PassContext {
  readonly options: Readonly<CompileOptions>;
  /** Records a diagnostic; the pipeline stops after the pass if any is an error. */
  report(diagnostic: Diagnostic): void;
}

/** Hooks for tooling: called around every pass. */
export interface PipelineHooks {
  /** Pass names (or "all") whose output IR is printed. */
  readonly printIrAfter?: readonly string[];
  readonly print?: (text: string) => void;
  readonly timings?: { name: string; ms: number }[];
}

/** Runs passes in order; verifies the IR after each; throws CompileError on any error diagnostic. */
export function runPipeline(
  module: IrModule,
  passes: readonly Pass[],
  options: Readonly<CompileOptions>,
  hooks: PipelineHooks = {},
): IrModule {
  const warnings: Diagnostic[] = [];
  const unknown = (hooks.printIrAfter ?? []).filter((n) => n !== "all" && !passes.some((p) => p.name === n));
  if (unknown.length > 0) {
    throw new UnknownPassError(
      `print-ir-after: no pass named ${unknown.map((n) => JSON.stringify(n)).join(", ")}; the passes are ${
        passes.map((p) => p.name).join(", ")
      } (or "all")`,
    );
  }
  for (const pass of passes) {
    const errors: Diagnostic[] = [];
    const ctx: PassContext = {
      options,
      report: (d) => (d.severity === "error" ? errors : warnings).push({ ...d, pass: pass.name }),
    };
    const t0 = performance.now();
    module = pass.run(module, ctx);
    hooks.timings?.push({ name: pass.name, ms: performance.now() - t0 });
    if (errors.length > 0) throw new CompileError(dedupe(errors));
    const broken = verifyModule(module);
    if (broken.length > 0) {
      throw new Error(`internal: IR invalid after pass "${pass.name}": ${broken.join("; ")}`);
    }
    const wanted = hooks.printIrAfter ?? [];
    if (wanted.includes(pass.name) || wanted.includes("all")) {
      (hooks.print ?? console.log)(`// IR after ${pass.name}\n${printModule(module)}`);
    }
  }
  return module;
}

/**
 * One diagnostic per (id, location): a block used by several entries (forward, every step) fails
 * once per copy, and the user needs to read it once.
 */
function dedupe(ds: readonly Diagnostic[]): Diagnostic[] {
  const seen = new Map<string, { d: Diagnostic; n: number }>();
  for (const d of ds) {
    const key = `${d.id}@${d.span ? `${d.span.file}:${d.span.line}:${d.span.column}` : d.message}`;
    const hit = seen.get(key);
    if (hit) hit.n++;
    else seen.set(key, { d, n: 1 });
  }
  return [...seen.values()].map(({ d, n }) =>
    n === 1
      ? d
      : { ...d, notes: [...d.notes, { message: `reported once for ${n} copies of this node (one per entry point)` }] }
  );
}
