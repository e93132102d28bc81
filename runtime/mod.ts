/**
 * @file Runtime API: load a compiled model module and its checkpoints, run its entries.
 * @module
 */
import type { HostTensor } from "./js/exec.ts";
import { readSafetensors, type SafetensorsFile } from "./safetensors.ts";
import { bindWeights, type ParamSpec } from "./weights.ts";

export type { HostTensor } from "./js/exec.ts";

type Dims = readonly (number | "B")[];

/** Inputs, outputs and tappable labels of one entry point. */
export interface EntryInfo {
  readonly inputs: readonly { name: string; dtype: "f32" | "i32"; shape: Dims }[];
  readonly outputs: readonly { name: string; dtype: "f32" | "i32"; shape: Dims }[];
  readonly labels: readonly string[];
  /** Checkpoint tensors this entry reads. */
  readonly params: readonly string[];
}

/** What one entry returns. */
export interface EntryResult {
  readonly outputs: Record<string, HostTensor>;
  readonly taps: Record<string, HostTensor>;
}

/** A generated entry function. */
export type EntryFn = (
  weight: (name: string) => Float32Array,
  inputs: Readonly<Record<string, HostTensor>>,
  options?: { taps?: readonly string[] },
) => EntryResult;

/** What a generated model module exports. */
export interface ModelModule {
  readonly info: {
    readonly name: string;
    readonly meta: Readonly<Record<string, unknown>>;
    readonly optionalWeights: readonly string[];
    readonly params: readonly ParamSpec[];
    readonly entries: Readonly<Record<string, EntryInfo>>;
  };
  readonly entries: Readonly<Record<string, EntryFn>>;
  /** Low-rank guard counters: heads checked, heads that fell back to exact attention. */
  readonly guardStats?: { readonly checks: number; readonly fallbacks: number };
}

/** Imports a bundled model module from its source text. */
export async function importModel(bundle: string): Promise<ModelModule> {
  const bytes = new TextEncoder().encode(bundle);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return await import(`data:text/javascript;base64,${btoa(binary)}`) as ModelModule;
}

/** A model with its weights bound, ready to run. */
export interface LoadedModel {
  readonly module: ModelModule;
  /** Runs one entry; unknown entries are a TypeError naming the available ones. */
  run(entry: string, inputs: Readonly<Record<string, HostTensor>>, options?: { taps?: readonly string[] }): EntryResult;
}

/**
 * Binds already-read checkpoint files to the model (errors name every bad tensor). With `entries`,
 * only the tensors those entries read are required (e.g. `decode` needs no VAR checkpoint).
 */
export function bindModel(
  module: ModelModule,
  files: Partial<Record<"var" | "vae", SafetensorsFile>>,
  entries?: readonly string[],
): LoadedModel {
  const needed = entries && new Set(entries.flatMap((e) => module.info.entries[e]?.params ?? []));
  const weights = bindWeights(module.info.params, files, module.info.optionalWeights, needed);
  return {
    module,
    run(entry, inputs, options) {
      const fn = module.entries[entry];
      if (!fn) {
        throw new TypeError(
          `Model "${module.info.name}" has no entry "${entry}" (entries: ${Object.keys(module.entries).join(", ")})`,
        );
      }
      return fn(weights, inputs, options);
    },
  };
}

/** Reads the checkpoint files and binds them to the model. */
export async function loadModel(
  module: ModelModule,
  paths: { var?: string; vae?: string },
  entries?: readonly string[],
): Promise<LoadedModel> {
  const files: Partial<Record<"var" | "vae", SafetensorsFile>> = {};
  if (paths.var) files.var = await readSafetensors(paths.var);
  if (paths.vae) files.vae = await readSafetensors(paths.vae);
  return bindModel(module, files, entries);
}
