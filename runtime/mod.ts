/**
 * @file Runtime API: load a compiled model module and its checkpoints, run it.
 * @module
 */
import type { HostTensor } from "./js/exec.ts";
import { readSafetensors, type SafetensorsFile } from "./safetensors.ts";
import { bindWeights, type ParamSpec } from "./weights.ts";

export type { HostTensor } from "./js/exec.ts";

/** What a generated model module exports. */
export interface ModelModule {
  readonly info: {
    readonly name: string;
    readonly meta: Readonly<Record<string, unknown>>;
    readonly optionalWeights: readonly string[];
    readonly params: readonly ParamSpec[];
    readonly inputs: readonly { name: string; dtype: "f32" | "i32"; shape: readonly (number | "B")[] }[];
    readonly outputs: readonly { name: string; dtype: "f32" | "i32"; shape: readonly (number | "B")[] }[];
    readonly labels: readonly string[];
  };
  forward(
    weights: (name: string) => Float32Array,
    inputs: Readonly<Record<string, HostTensor>>,
    options?: { taps?: readonly string[] },
  ): { outputs: Record<string, HostTensor>; taps: Record<string, HostTensor> };
}

/** Imports a bundled model module from its source text. */
export async function importModel(bundle: string): Promise<ModelModule> {
  const url = `data:text/javascript;base64,${btoa(String.fromCharCode(...chunks(new TextEncoder().encode(bundle))))}`;
  return await import(url) as ModelModule;
}

function* chunks(bytes: Uint8Array): Generator<number> {
  for (const b of bytes) yield b;
}

/** A model with its weights bound, ready to run. */
export interface LoadedModel {
  readonly module: ModelModule;
  run(
    inputs: Readonly<Record<string, HostTensor>>,
    options?: { taps?: readonly string[] },
  ): ReturnType<ModelModule["forward"]>;
}

/** Reads the checkpoint files and binds them to the model (errors name every bad tensor). */
export async function loadModel(module: ModelModule, paths: { var?: string; vae?: string }): Promise<LoadedModel> {
  const files: Partial<Record<"var" | "vae", SafetensorsFile>> = {};
  if (paths.var) files.var = await readSafetensors(paths.var);
  if (paths.vae) files.vae = await readSafetensors(paths.vae);
  const weights = bindWeights(module.info.params, files, module.info.optionalWeights);
  return { module, run: (inputs, options) => module.forward(weights, inputs, options) };
}
