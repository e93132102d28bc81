/** @file Compile a spec and bind its checkpoints: the first step of `forward`, `generate` and `decode`. */
import { compile } from "../compiler/mod.ts";
import { requireVarEntries } from "../runtime/generate.ts";
import { importModel, type LoadedModel, loadModel, type ModelModule } from "../runtime/mod.ts";
import { passList } from "./common.ts";
import { loweringOptions } from "./lowering.ts";
import { targetFlag } from "./compile.ts";
import type { VarMeta } from "../runtime/var_model.ts";

export type { VarMeta } from "../runtime/var_model.ts";

/** Compiles `spec` per the flags and imports the module (no checkpoint is read yet); `command` needs `entries`. */
export async function compileModel(
  spec: string,
  values: Record<string, unknown>,
  command: string,
  entries: (schedule: readonly number[]) => string[],
): Promise<{ module: ModelModule; meta: VarMeta; compileMs: number }> {
  const t0 = performance.now();
  const compiled = await compile(spec, { ...loweringOptions(values), target: await targetFlag(values.target) }, {
    hooks: { printIrAfter: passList(values["print-ir-after"]) },
  });
  const module = await importModel(compiled.emitted.bundle);
  requireVarEntries(module, command, entries);
  return { module, meta: compiled.module.meta as unknown as VarMeta, compileMs: performance.now() - t0 };
}

/** Compiles `spec`, then binds the checkpoints the `entries` of `command` need. */
export async function compileAndLoad(
  spec: string,
  values: Record<string, unknown>,
  paths: { var?: string; vae?: string },
  command: string,
  entries: readonly string[],
): Promise<{ model: LoadedModel; meta: VarMeta }> {
  const { module, meta } = await compileModel(spec, values, command, () => [...entries]);
  return { model: await loadModel(module, paths, entries), meta };
}
