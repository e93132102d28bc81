/** @file Flags that steer the attention lowering, shared by compile, explain, forward and generate. */
import type { CompileOptions, WeightLookup } from "../compiler/options.ts";
import { readSafetensors, type SafetensorsFile } from "../runtime/safetensors.ts";
import { nonFinite, WeightsError } from "../runtime/weights.ts";
import { numberFlag, type Options, UsageError } from "./common.ts";

/** parseArgs descriptors of the lowering flags. */
export const LOWERING_FLAGS: Options = {
  attention: { type: "string" },
  eps: { type: "string" },
  family: { type: "string" },
  degree: { type: "string" },
  "check-numerics": { type: "boolean" },
};

/** Help lines of the lowering flags. */
export const LOWERING_HELP = `  --attention MODE         auto (bound and cost model), exact or lowrank (default auto)
  --eps E                  entrywise relative error of the low-rank exp approximation (default 1e-3)
  --family F               taylor or chebyshev (default chebyshev)
  --degree G               polynomial degree override (default: smallest meeting --eps)
  --check-numerics         check every result for NaN/Inf and name the first node (spec span, scale)`;

/** Reads the lowering flags; bad values are usage errors naming the flag. */
export function loweringOptions(values: Record<string, unknown>): Partial<CompileOptions> {
  const out: { -readonly [K in keyof CompileOptions]?: CompileOptions[K] } = {};
  const attention = values.attention;
  if (attention !== undefined) {
    if (attention !== "auto" && attention !== "exact" && attention !== "lowrank") {
      throw new UsageError(`--attention must be auto, exact or lowrank, got "${attention}"`);
    }
    out.attention = attention;
  }
  if (values.eps !== undefined) {
    const eps = numberFlag(values, "eps", 1e-3);
    if (!(eps > 0 && eps < 1)) throw new UsageError(`--eps must be in (0, 1), got ${eps}`);
    out.eps = eps;
  }
  const family = values.family;
  if (family !== undefined) {
    if (family !== "taylor" && family !== "chebyshev") {
      throw new UsageError(`--family must be taylor or chebyshev, got "${family}"`);
    }
    out.family = family;
  }
  if (values.degree !== undefined) {
    const g = numberFlag(values, "degree", 0);
    if (!(Number.isInteger(g) && g >= 1 && g <= 40)) {
      throw new UsageError(`--degree must be an integer in [1, 40], got ${g}`);
    }
    out.degree = g;
  }
  if (values["check-numerics"]) out.checkNumerics = true;
  return out;
}

/** Checkpoint tensors for the norm-bound analysis, from already-read files; a non-finite one is refused. */
export function weightLookup(files: Partial<Record<"var" | "vae", SafetensorsFile>>): WeightLookup {
  return (name, source) => {
    const f = files[source];
    const e = f?.entries.get(name);
    if (!e || e.dtype !== "F32") return undefined;
    const data = f!.f32(name), bad = nonFinite(data, e.shape);
    if (bad) throw new WeightsError(`${f!.file}: tensor "${name}" ${bad}`);
    return data;
  };
}

/** Reads `--var`/`--vae` when given (for compile and explain, where they are optional). */
export async function optionalCheckpoints(
  values: Record<string, unknown>,
): Promise<Partial<Record<"var" | "vae", SafetensorsFile>>> {
  const files: Partial<Record<"var" | "vae", SafetensorsFile>> = {};
  if (typeof values.var === "string") files.var = await readSafetensors(values.var);
  if (typeof values.vae === "string") files.vae = await readSafetensors(values.vae);
  return files;
}
