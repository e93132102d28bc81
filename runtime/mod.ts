/**
 * @file Runtime API: load a compiled model module and its checkpoints, run its entries, generate images.
 * @module
 */
import type { HostTensor, Tensor } from "./exec.ts";
import { residentBytes } from "./js/wasm/gemm.ts";
import { readSafetensors, type SafetensorsFile } from "./safetensors.ts";
import { bindWeights, type ParamSpec } from "./weights.ts";
import { gpuDevice, hostDevice, type ModelDevice } from "./device.ts";

export type { DeviceData, HostTensor, Tensor } from "./exec.ts";
export type { ModelDevice } from "./device.ts";
export { generate, type GenerateOptions, type Generation } from "./generate.ts";

type Dims = readonly (number | "B")[];

/** Inputs, outputs and tappable labels of one entry point. */
export interface EntryInfo {
  readonly inputs: readonly { name: string; dtype: "f32" | "i32"; shape: Dims }[];
  readonly outputs: readonly { name: string; dtype: "f32" | "i32"; shape: Dims }[];
  readonly labels: readonly string[];
  /** Checkpoint tensors this entry reads. */
  readonly params: readonly string[];
}

/** What one entry returns (outputs named in `keep` are device tensors on device targets, see `Tensor`). */
export interface EntryResult {
  readonly outputs: Record<string, HostTensor>;
  readonly taps: Record<string, HostTensor>;
}

/**
 * Options of one run: `taps` to read back; `keep`, outputs to leave on the device (device targets;
 * the JS target's outputs are host arrays anyway).
 */
export interface RunOptions {
  readonly taps?: readonly string[];
  readonly keep?: readonly string[];
}

/** A generated entry function (async on device targets, which also take the device). */
export type EntryFn = (
  weight: (name: string) => unknown,
  inputs: Readonly<Record<string, Tensor>>,
  options?: RunOptions,
  device?: unknown,
) => EntryResult | Promise<EntryResult>;

/** The device class a WebGPU module exports (`runtime/webgpu/device.ts`), as the runtime uses it. */
export interface DeviceClass {
  create(): Promise<Device>;
}

/** A created device: uploads, reads back, releases; reports its adapter and guard counters. */
export interface Device {
  readonly info: string;
  upload(data: Float32Array | Int32Array): unknown;
  read(t: never): Promise<Float32Array | Int32Array>;
  release(t: never): void;
  /** Submits the pending work and waits for it. */
  flush(): Promise<void>;
  /** Read-backs so far: `read` calls and bytes. */
  readonly readStats: { readonly reads: number; readonly bytes: number };
  guardStats(): Promise<{ checks: number; fallbacks: number }>;
}

/** Static description of a compiled model: metadata, checkpoint tensors, and each entry's inputs, outputs and taps. */
export interface ModelInfo {
  readonly name: string;
  readonly meta: Readonly<Record<string, unknown>>;
  /** Name patterns (`encoder.*`) of checkpoint tensors the model does not read, allowed in a checkpoint. */
  readonly optionalWeights: readonly string[];
  readonly params: readonly ParamSpec[];
  readonly entries: Readonly<Record<string, EntryInfo>>;
  /** The target it was compiled for (a built-in one or a plugin's backend). */
  readonly target: string;
}

/** What a generated model module exports. */
export interface ModelModule {
  readonly info: ModelInfo;
  readonly entries: Readonly<Record<string, EntryFn>>;
  /** Low-rank guard counters of the JS target: heads checked, heads that fell back to exact attention. */
  readonly guardStats?: { readonly checks: number; readonly fallbacks: number };
  /** The device class of a WebGPU module. */
  readonly Gpu?: DeviceClass;
  /** WebGPU: a device tensor's rows twice along the batch axis (a new device tensor). */
  readonly twice?: (gpu: never, x: never) => unknown;
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
  /** Runs one entry (a promise on device targets); unknown entries are a TypeError naming the available ones. */
  run(
    entry: string,
    inputs: Readonly<Record<string, Tensor>>,
    options?: RunOptions,
  ): EntryResult | Promise<EntryResult>;
  /**
   * Where tensors kept between entries live (`keep`): the host for host modules, the GPU for device
   * modules, whose later runs take them as inputs without a round trip through the host.
   */
  readonly tensors: ModelDevice;
  /** Heads checked by low-rank guards and heads that fell back to exact attention. */
  guardStats(): Promise<{ checks: number; fallbacks: number }>;
  /** The adapter a device target runs on ("" on the JS target). */
  device(): Promise<string>;
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
  const entry = (name: string) => {
    const fn = module.entries[name];
    if (!fn) {
      throw new TypeError(
        `Model "${module.info.name}" has no entry "${name}" (entries: ${Object.keys(module.entries).join(", ")})`,
      );
    }
    return fn;
  };
  if (!module.Gpu) { // a host module: its kernels run here
    return {
      module,
      run: (name, inputs, options) => entry(name)(weights, inputs, options),
      guardStats: () => Promise.resolve({ ...(module.guardStats ?? { checks: 0, fallbacks: 0 }) }),
      device: () => Promise.resolve(""),
      tensors: hostDevice,
    };
  }
  // WebGPU: the device is created on first use; each weight is uploaded once, when first read.
  let device: Promise<Device> | undefined;
  const gpu = () => (device ??= module.Gpu!.create());
  const uploaded = new Map<string, unknown>();
  return {
    module,
    async run(name, inputs, options) {
      const fn = entry(name), d = await gpu();
      const weight = (n: string) => {
        if (!uploaded.has(n)) uploaded.set(n, d.upload(weights(n)));
        return uploaded.get(n);
      };
      return await fn(weight, inputs, options, d);
    },
    guardStats: async () => await (await gpu()).guardStats(),
    device: async () => (await gpu()).info,
    tensors: gpuDevice(module, gpu),
  };
}

/** Reads the checkpoint files and binds them to the model. */
export async function loadModel(
  module: ModelModule,
  paths: { var?: string; vae?: string },
  entries?: readonly string[],
): Promise<LoadedModel> {
  const files: Partial<Record<"var" | "vae", SafetensorsFile>> = {};
  // host modules: read straight into the WebAssembly memory, where the kernels read weights in place
  const options = module.Gpu ? {} : { alloc: residentBytes };
  if (paths.var) files.var = await readSafetensors(paths.var, options);
  if (paths.vae) files.vae = await readSafetensors(paths.vae, options);
  return bindModel(module, files, entries);
}
