/**
 * @file Both runtimes against the kernel contract (`kernels.ts`): the type checker compares every
 * signature (this file fails `deno check` when a runtime lacks a kernel or takes other arguments),
 * and at run time every contract kernel is a function of both modules.
 */
import assert from "node:assert/strict";
import type { KernelName, Kernels, OnDevice } from "./kernels.ts";
import * as JsKernels from "./js/kernels.ts";
import * as JsLowrank from "./js/lowrank.ts";
import * as GpuKernels from "./webgpu/kernels.ts";
import type { Gpu, GpuTensor } from "./webgpu/device.ts";

/** Every kernel name once: the `Record` makes a missing or extra name a type error. */
const NAMES = Object.keys(
  {
    levelIds: 0,
    gather: 0,
    linear: 0,
    layerNorm: 0,
    groupNorm: 0,
    l2Normalize: 0,
    unary: 0,
    binary: 0,
    scalar: 0,
    permute: 0,
    slice: 0,
    concat: 0,
    attention: 0,
    lowrankAttention: 0,
    lowrankState: 0,
    lowrankRead: 0,
    conv2d: 0,
    interpolate: 0,
    upsampleNearest: 0,
    checkFinite: 0,
  } satisfies Record<KernelName, 0>,
) as KernelName[];

/** The js target's kernels (the host modules `K` and `LR` of the generated code) as the contract sees them. */
const js = { ...JsKernels, ...JsLowrank } satisfies Kernels<Float32Array | Int32Array>;
/** The WebGPU kernels (`G` of the generated code). */
const gpu = GpuKernels satisfies OnDevice<Kernels<GpuTensor>, Gpu>;

Deno.test("kernel contract: every kernel is a function of the js and the WebGPU runtime", () => {
  for (const name of NAMES) {
    assert.equal(typeof js[name], "function", `js: ${name}`);
    assert.equal(typeof gpu[name], "function", `webgpu: ${name}`);
  }
});
