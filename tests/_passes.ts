/** @file For pass unit tests: spec text lowered up to a pass, and one pass run on its own. */
import { fileURLToPath } from "node:url";
import type { Diagnostic } from "../compiler/diagnostics.ts";
import { parseSpec } from "../compiler/dsl/mod.ts";
import type { IrModule, Node } from "../compiler/ir/node.ts";
import { verifyModule } from "../compiler/ir/verify.ts";
import { type CompileOptions, resolveOptions } from "../compiler/options.ts";
import { type Pass, runPipeline } from "../compiler/pass.ts";
import { defaultPipeline } from "../compiler/pipeline.ts";

/** The path spec text is read as (no such file): its imports resolve from tests/specs/. */
export const SPEC = fileURLToPath(new URL("./specs/pass_unit.var.ts", import.meta.url));
/** The DSL module, as such a spec imports it. */
export const LANG = "../../compiler/dsl/lang.ts";

/** The IR of `text` after the default passes that run before `pass`: the module `pass` receives. */
export function lowerBefore(text: string, pass: string, options: Partial<CompileOptions> = {}): IrModule {
  const i = defaultPipeline.findIndex((p) => p.name === pass);
  if (i < 0) throw new TypeError(`no pass named "${pass}"`);
  return runPipeline(parseSpec(SPEC, text), defaultPipeline.slice(0, i), resolveOptions(options));
}

/**
 * Runs one pass alone: the module it returns and the diagnostics it reported. As in the pipeline, the
 * module must verify unless an error was reported.
 */
export function runPass(
  pass: Pass,
  module: IrModule,
  options: Partial<CompileOptions> = {},
): { module: IrModule; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const out = pass.run(module, { options: resolveOptions(options), report: (d) => diagnostics.push(d) });
  const broken = diagnostics.some((d) => d.severity === "error") ? [] : verifyModule(out);
  if (broken.length > 0) throw new Error(`IR invalid after ${pass.name}: ${broken.join("; ")}`);
  return { module: out, diagnostics };
}

/** The node computing output `name` of `entry`. */
export function outputNode(module: IrModule, entry: string, name: string): Node {
  const id = module.entries[entry]?.[name];
  if (id === undefined) throw new Error(`no output ${entry}.${name}`);
  return module.nodes[id]!;
}

/** 1-based line and column of the first occurrence of `needle` in `text` (where a span should point). */
export function positionOf(text: string, needle: string): { line: number; column: number } {
  const at = text.indexOf(needle);
  if (at < 0) throw new Error(`${needle} is not in the spec`);
  const before = text.slice(0, at).split("\n");
  return { line: before.length, column: before.at(-1)!.length + 1 };
}
