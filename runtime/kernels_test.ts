/**
 * @file Both runtimes against the kernel contract (`kernels.ts`): the type checker compares every
 * kernel's argument record (this file fails `deno check` when a runtime lacks a kernel, or a kernel
 * needs a field the contract does not pass or types one differently), and at run time every
 * contract kernel is a function of both modules.
 */
import assert from "node:assert/strict";
import { KERNEL_NAMES, type Kernels, type OnDevice } from "./kernels.ts";
import * as JsKernels from "./js/kernels.ts";
import * as JsLowrank from "./js/lowrank.ts";
import * as GpuKernels from "./webgpu/kernels.ts";
import type { Gpu, GpuTensor } from "./webgpu/device.ts";

/** The js target's kernels (the host modules `K` and `LR` of the generated code) as the contract sees them. */
const js = { ...JsKernels, ...JsLowrank } satisfies Kernels<Float32Array, Int32Array>;
/** The WebGPU kernels (`G` of the generated code). */
const gpu = GpuKernels satisfies OnDevice<Kernels<GpuTensor>, Gpu>;

Deno.test("kernel contract: every kernel is a function of the js and the WebGPU runtime", () => {
  for (const name of KERNEL_NAMES) {
    assert.equal(typeof js[name], "function", `js: ${name}`);
    assert.equal(typeof gpu[name], "function", `webgpu: ${name}`);
  }
});
