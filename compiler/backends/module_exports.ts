/**
 * @file What a compiled model module exports, declared with the types of the runtime and compiler
 * modules it is made of: the source of the `.d.ts` beside it. `deno task dts` (`tools/dts.ts`) follows
 * these declarations and every type they name, and writes them flattened into one file per target and
 * kind (`declarations.ts`: `varc compile`'s generated module, `varc bundle`'s module with the loader
 * API); `declarations_test.ts` fails when that file is stale. Nothing imports this module at run time.
 *
 * Which declarations each `.d.ts` holds is listed in `tools/dts.ts` (`PARTS`), by the sections below.
 */
import { fetchBytes, generate, type LoadOptions, toRgba, type Weights } from "../../runtime/app.ts";
import type { DeviceClass, EntryFn, LoadedModel, ModelInfo } from "../../runtime/mod.ts";
import type { CompileReport } from "../report.ts";

// ── Every target's generated module (`host.ts`) ─────────────────────────────────────────────────

export type { HostTensor, Tensor } from "../../runtime/exec.ts";
/** Static description: metadata, checkpoint tensors, and each entry's inputs, outputs and taps. */
export declare const info: ModelInfo;
/**
 * Entry points by name: `weight` returns a checkpoint tensor by name (a device tensor on WebGPU, whose
 * entries also take the device and are async).
 */
export declare const entries: Readonly<Record<string, EntryFn>>;

// ── The generated module of a host target (js) ──────────────────────────────────────────────────

export { guardStats } from "../../runtime/js/lowrank.ts";

// ── The generated module of a device target (webgpu) ────────────────────────────────────────────

/** The WebGPU device class (`runtime/webgpu/device.ts`); `load` creates one on first use. */
export declare const Gpu: DeviceClass;

// ── A bundle (`varc bundle`, the esbuild plugin): the compile report and the loader API (`runtime/app.ts`) ──

/** The compile report: node count, parameters, pass timings, and per attention block its bound and decision. */
export declare const report: CompileReport;
export type { WeightSource } from "../../runtime/checkpoint_bytes.ts";
export type { LoadOptions, RgbaImage, Weights } from "../../runtime/app.ts";
export type { LoadedModel } from "../../runtime/mod.ts";
export type { GenerateOptions, Generation } from "../../runtime/generate.ts";
/** Reads the checkpoints (bytes, URLs or Deno file paths, with progress) and binds them to this model. */
export declare function load(weights: Weights, options?: LoadOptions): Promise<LoadedModel>;
export { fetchBytes, generate, toRgba };
/** The module's exports as one object (its default export). */
declare const model: {
  info: typeof info;
  entries: typeof entries;
  report: typeof report;
  load: typeof load;
  generate: typeof generate;
  fetchBytes: typeof fetchBytes;
  toRgba: typeof toRgba;
};
export default model;
