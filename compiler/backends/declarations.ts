/**
 * @file The `.d.ts` of compiled model modules, from the declarations of `module_exports.ts` and the
 * runtime and compiler types they name. Written by `deno task dts` (`tools/dts.ts`); do not edit
 * (`declarations_test.ts` fails when this is stale).
 */

/** Each declaration, by the name it declares. */
const DECLARATIONS: Readonly<Record<string, string>> = {
  "HostTensor": `/** A tensor on the host: flat data and its shape. */
export interface HostTensor {
  readonly data: Float32Array | Int32Array;
  readonly shape: readonly number[];
}`,
  "Tensor": `/** A model input or kept output: host data, or (device targets) a device tensor. */
export interface Tensor {
  readonly data: Float32Array | Int32Array | DeviceData;
  readonly shape: readonly number[];
}`,
  "DeviceData": `/** Data of a tensor that lives on a device (a WebGPU \`GpuTensor\`): its element count and dtype. */
export interface DeviceData {
  readonly length: number;
  readonly dtype: "f32" | "i32";
}`,
  "info": `/** Static description: metadata, checkpoint tensors, and each entry's inputs, outputs and taps. */
export declare const info: ModelInfo;`,
  "ModelInfo":
    `/** Static description of a compiled model: metadata, checkpoint tensors, and each entry's inputs, outputs and taps. */
export interface ModelInfo {
  readonly name: string;
  readonly meta: Readonly<Record<string, unknown>>;
  /** Name patterns (\`encoder.*\`) of checkpoint tensors the model does not read, allowed in a checkpoint. */
  readonly optionalWeights: readonly string[];
  readonly params: readonly ParamSpec[];
  readonly entries: Readonly<Record<string, EntryInfo>>;
  /** The target it was compiled for (a built-in one or a plugin's backend). */
  readonly target: string;
}`,
  "ParamSpec": `/** A checkpoint tensor the model declares. */
export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly source: "var" | "vae";
}`,
  "EntryInfo": `/** Inputs, outputs and tappable labels of one entry point. */
export interface EntryInfo {
  readonly inputs: readonly {
    name: string;
    dtype: "f32" | "i32";
    shape: Dims;
  }[];
  readonly outputs: readonly {
    name: string;
    dtype: "f32" | "i32";
    shape: Dims;
  }[];
  readonly labels: readonly string[];
  /** Checkpoint tensors this entry reads. */
  readonly params: readonly string[];
}`,
  "Dims": `type Dims = readonly (number | "B")[];`,
  "entries": `/**
 * Entry points by name: \`weight\` returns a checkpoint tensor by name (a device tensor on WebGPU, whose
 * entries also take the device and are async).
 */
export declare const entries: Readonly<Record<string, EntryFn>>;`,
  "EntryFn": `/** A generated entry function (async on device targets, which also take the device). */
export type EntryFn = (weight: (name: string) => unknown, inputs: Readonly<Record<string, Tensor>>, options?: RunOptions, device?: unknown) => EntryResult | Promise<EntryResult>;`,
  "RunOptions": `/**
 * Options of one run: \`taps\` to read back; \`keep\`, outputs to leave on the device (device targets;
 * the JS target's outputs are host arrays anyway).
 */
export interface RunOptions {
  readonly taps?: readonly string[];
  readonly keep?: readonly string[];
}`,
  "EntryResult":
    `/** What one entry returns (outputs named in \`keep\` are device tensors on device targets, see \`Tensor\`). */
export interface EntryResult {
  readonly outputs: Record<string, HostTensor>;
  readonly taps: Record<string, HostTensor>;
}`,
  "guardStats": `/** Counts of the run-time guard: heads checked, and heads that fell back to exact attention. */
export declare const guardStats: {
  checks: number;
  fallbacks: number;
};`,
  "Gpu": `/** The WebGPU device class (\`runtime/webgpu/device.ts\`); \`load\` creates one on first use. */
export declare const Gpu: DeviceClass;`,
  "DeviceClass":
    `/** The device class a WebGPU module exports (\`runtime/webgpu/device.ts\`), as the runtime uses it. */
export interface DeviceClass {
  create(): Promise<Device>;
}`,
  "Device": `/** A created device: uploads, reads back, releases; reports its adapter and guard counters. */
export interface Device {
  readonly info: string;
  upload(data: Float32Array | Int32Array): unknown;
  read(t: never): Promise<Float32Array | Int32Array>;
  release(t: never): void;
  /** Submits the pending work and waits for it. */
  flush(): Promise<void>;
  /** Read-backs so far: \`read\` calls and bytes. */
  readonly readStats: {
    readonly reads: number;
    readonly bytes: number;
  };
  guardStats(): Promise<{
    checks: number;
    fallbacks: number;
  }>;
}`,
  "report":
    `/** The compile report: node count, parameters, pass timings, and per attention block its bound and decision. */
export declare const report: CompileReport;`,
  "CompileReport": `/** Summary of a compiled model (also written as report.json). */
export interface CompileReport {
  readonly name: string;
  readonly spec: string;
  readonly target: string;
  readonly nodes: number;
  readonly parameters: {
    readonly var: number;
    readonly vae: number;
  };
  readonly tensors: {
    readonly var: number;
    readonly vae: number;
  };
  readonly passes: readonly {
    name: string;
    ms: number;
  }[];
  /** Per attention block: bound, polynomial, cost and decision. */
  readonly attention: readonly AttentionRow[];
}`,
  "AttentionRow": `/** One row: an attention block as lowered for its whole schedule (teacher-forced form). */
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
  readonly flops: {
    readonly exact: number;
    readonly lowrank?: number;
  };
  readonly reason: string;
  /** How the generation steps run this block: KV cache (exact), low-rank state, or low-rank over the cache. */
  readonly steps: string;
}`,
  "BoundSource": `/** Where an attention node's logit bound comes from, strongest first. */
export type BoundSource = "static-exact" | "static-propagated" | "calibrated" | "none";`,
  "WeightSource": `/** Checkpoint bytes, a URL, or (in Deno) a file path. */
export type WeightSource = Uint8Array | ArrayBuffer | string | URL;`,
  "Weights": `/** The two checkpoints, each as bytes, a URL, or (in Deno) a file path. */
export type Weights = {
  var?: WeightSource;
  vae?: WeightSource;
};`,
  "LoadOptions": `/** Options of \`load\`. */
export interface LoadOptions {
  /** Only bind the tensors these entries read (e.g. \`["decode"]\` needs no VAR checkpoint). */
  readonly entries?: readonly string[];
  /** Progress of each checkpoint read or fetched (total: the file size, or the Content-Length when sent). */
  readonly onProgress?: (p: {
    file: "var" | "vae";
    loaded: number;
    total?: number;
  }) => void;
}`,
  "LoadedModel": `/** A model with its weights bound, ready to run. */
export interface LoadedModel {
  readonly module: ModelModule;
  /** Runs one entry (a promise on device targets); unknown entries are a TypeError naming the available ones. */
  run(entry: string, inputs: Readonly<Record<string, Tensor>>, options?: RunOptions): EntryResult | Promise<EntryResult>;
  /**
   * Where tensors kept between entries live (\`keep\`): the host for host modules, the GPU for device
   * modules, whose later runs take them as inputs without a round trip through the host.
   */
  readonly tensors: ModelDevice;
  /** Heads checked by low-rank guards and heads that fell back to exact attention. */
  guardStats(): Promise<{
    checks: number;
    fallbacks: number;
  }>;
  /** The adapter a device target runs on ("" on the JS target). */
  device(): Promise<string>;
}`,
  "ModelModule": `/** What a generated model module exports. */
export interface ModelModule {
  readonly info: ModelInfo;
  readonly entries: Readonly<Record<string, EntryFn>>;
  /** Low-rank guard counters of the JS target: heads checked, heads that fell back to exact attention. */
  readonly guardStats?: {
    readonly checks: number;
    readonly fallbacks: number;
  };
  /** The device class of a WebGPU module. */
  readonly Gpu?: DeviceClass;
  /** WebGPU: a device tensor's rows twice along the batch axis (a new device tensor). */
  readonly twice?: (gpu: never, x: never) => unknown;
}`,
  "ModelDevice":
    `/** Tensors kept between entries (\`run(..., { keep })\`): read back, duplicated, sampled and freed by their owner. */
export interface ModelDevice {
  /**
   * Whether entries only queue their work, which runs at the next read-back (a device queue): a
   * caller timing stages then sees all of a step's work at its first read-back.
   */
  readonly deferred: boolean;
  /** The host copy of a tensor (a host tensor is returned as it is). */
  read(t: Tensor): Promise<HostTensor>;
  /** Its rows twice along the batch axis (\`[n, ...]\` -> \`[2n, ...]\`), where the tensor lives. */
  twice(t: Tensor): Promise<Tensor>;
  /** Frees a tensor (a host array the JS kernels allocated goes back to their pool for reuse). */
  release(t: Tensor): Promise<void>;
  /**
   * Guides logits [2B, T, V] (\`guide\`) and samples one token per row (\`sampleRowsWith\`) with the
   * caller's uniforms, consuming the logits: the tokens [B, T] stay where the logits were (the caller
   * frees them), with their host copy and, when asked, the guided logits [B, T, V].
   */
  sample(logits: Tensor, o: DeviceSampleOptions): Promise<{
    tokens: Tensor;
    host: Int32Array;
    guided?: Float32Array;
  }>;
  /** Read-backs from a device so far: \`read\` calls and bytes (outputs, taps and \`read\`); zeros on the host. */
  readStats(): Promise<{
    reads: number;
    bytes: number;
  }>;
}`,
  "DeviceSampleOptions":
    `/** What the sampler needs besides the logits: sizes, guidance ratio t, top-k / top-p, one uniform per row. */
export interface DeviceSampleOptions extends SampleOptions {
  readonly B: number;
  readonly T: number;
  readonly V: number;
  readonly t: number;
  /** [B·T] in [0, 1), in row order (one \`Generator.uniform()\` per row, as \`sampleRows\` draws them). */
  readonly uniforms: ArrayLike<number>;
  /** Also read back the guided logits [B, T, V]. */
  readonly guided?: boolean;
}`,
  "SampleOptions": `/** Sampling settings; 0 disables top-k or top-p, as in the official code. */
export interface SampleOptions {
  readonly topK: number;
  readonly topP: number;
}`,
  "load": `/** Reads the checkpoints (bytes, URLs or Deno file paths, with progress) and binds them to this model. */
export declare function load(weights: Weights, options?: LoadOptions): Promise<LoadedModel>;`,
  "GenerateOptions": `/** What \`generate\` needs besides the model. */
export interface GenerateOptions {
  readonly labels: readonly number[];
  readonly cfg: number;
  readonly topK: number;
  readonly topP: number;
  readonly seed: number;
  /**
   * One seed per label: row b then draws only from its own generator, seeded \`seeds[b]\`, so an image
   * does not depend on the other rows of its batch (\`seed\` is not used). Without it, all rows draw in
   * turn from one generator seeded \`seed\`; for one label both are the same.
   */
  readonly seeds?: readonly number[];
  /** Called after each scale with its index and the milliseconds it took. */
  readonly onScale?: (s: number, scales: number, ms: number) => void;
  /** Keep the guided logits of the first \`keepGuided\` scales (for parity checks). */
  readonly keepGuided?: number;
  /** Labelled tensors to tap in every step, passed to \`onTaps\`. */
  readonly taps?: readonly string[];
  readonly onTaps?: (taps: Record<string, HostTensor>) => void;
}`,
  "Generation": `/** Everything a generation produces. */
export interface Generation {
  /** [B, L] tokens, scales concatenated, row-major inside a scale. */
  readonly idx: Int32Array;
  /** [B, Cvae, n, n], the decoder's input. */
  readonly fhat: HostTensor;
  /** [B, 3, H, W] in [0, 1]. */
  readonly img: HostTensor;
  readonly guided: Float32Array[];
  /**
   * Milliseconds per stage. On device targets each scale's f̂ update, step and sampling kernel share one
   * command buffer that runs at the token read-back: all of it counts as \`transformer\` (\`sampling\` and
   * \`fhat\` stay near 0).
   */
  readonly timings: {
    readonly transformer: number;
    readonly sampling: number;
    readonly fhat: number;
    readonly decode: number;
  };
}`,
  "generate": `/** Runs the whole generation loop on a loaded model. */
export declare function generate(model: LoadedModel, o: GenerateOptions): Promise<Generation>;`,
  "fetchBytes":
    `/** Fetches a URL into one buffer, reporting progress as the body streams in (total: the Content-Length). */
export declare function fetchBytes(url: string | URL, onProgress?: ByteProgress): Promise<Uint8Array>;`,
  "ByteProgress": `/** Bytes read so far, and the total when known. */
export type ByteProgress = (loaded: number, total?: number) => void;`,
  "RgbaImage": `/** An image as \`ImageData\` wants it: RGBA bytes, row-major. */
export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8ClampedArray<ArrayBuffer>;
}`,
  "toRgba":
    `/** Image \`index\` of img [B, 3, H, W] in [0, 1] as RGBA bytes, rounded as \`toPng\` does (for ImageData). */
export declare function toRgba(img: HostTensor, index?: number): RgbaImage;`,
  "model": `/** The module's exports as one object (its default export). */
declare const model: {
  info: typeof info;
  entries: typeof entries;
  report: typeof report;
  load: typeof load;
  generate: typeof generate;
  fetchBytes: typeof fetchBytes;
  toRgba: typeof toRgba;
};`,
  "default": `export default model;`,
};

/** The declarations of each `.d.ts`, in order. */
const FILES = {
  hostModule: [
    "HostTensor",
    "Tensor",
    "DeviceData",
    "info",
    "ModelInfo",
    "ParamSpec",
    "EntryInfo",
    "Dims",
    "entries",
    "EntryFn",
    "RunOptions",
    "EntryResult",
    "guardStats",
  ],
  deviceModule: [
    "HostTensor",
    "Tensor",
    "DeviceData",
    "info",
    "ModelInfo",
    "ParamSpec",
    "EntryInfo",
    "Dims",
    "entries",
    "EntryFn",
    "RunOptions",
    "EntryResult",
    "Gpu",
    "DeviceClass",
    "Device",
  ],
  hostBundle: [
    "HostTensor",
    "Tensor",
    "DeviceData",
    "info",
    "ModelInfo",
    "ParamSpec",
    "EntryInfo",
    "Dims",
    "entries",
    "EntryFn",
    "RunOptions",
    "EntryResult",
    "guardStats",
    "report",
    "CompileReport",
    "AttentionRow",
    "BoundSource",
    "WeightSource",
    "Weights",
    "LoadOptions",
    "LoadedModel",
    "ModelModule",
    "DeviceClass",
    "Device",
    "ModelDevice",
    "DeviceSampleOptions",
    "SampleOptions",
    "load",
    "GenerateOptions",
    "Generation",
    "generate",
    "fetchBytes",
    "ByteProgress",
    "RgbaImage",
    "toRgba",
    "model",
    "default",
  ],
  deviceBundle: [
    "HostTensor",
    "Tensor",
    "DeviceData",
    "info",
    "ModelInfo",
    "ParamSpec",
    "EntryInfo",
    "Dims",
    "entries",
    "EntryFn",
    "RunOptions",
    "EntryResult",
    "Gpu",
    "DeviceClass",
    "Device",
    "report",
    "CompileReport",
    "AttentionRow",
    "BoundSource",
    "WeightSource",
    "Weights",
    "LoadOptions",
    "LoadedModel",
    "ModelModule",
    "ModelDevice",
    "DeviceSampleOptions",
    "SampleOptions",
    "load",
    "GenerateOptions",
    "Generation",
    "generate",
    "fetchBytes",
    "ByteProgress",
    "RgbaImage",
    "toRgba",
    "model",
    "default",
  ],
} as const;

/**
 * A `.d.ts`: `varc compile`'s generated module (`hostModule`: js; `deviceModule`: webgpu) or a
 * bundle's, with the compile report and the loader API (`hostBundle`, `deviceBundle`).
 */
export function dts(file: keyof typeof FILES): string {
  return `${FILES[file].map((name) => DECLARATIONS[name]).join("\n\n")}\n\nexport {};\n`;
}
