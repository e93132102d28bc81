/**
 * @file Both runtimes against the kernel contract (`kernels.ts`) at run time: every contract kernel is
 * a function of the js modules (`K` and `LR` of generated code) and of the WebGPU module (`G`). The
 * types are checked where the kernels are, by `JsKernels` (`js/kernels.ts`) and `GpuKernels`
 * (`webgpu/kernels.ts`): `deno check` fails when a runtime lacks a kernel or needs a field the
 * contract does not give.
 */
import assert from "node:assert/strict";
import { KERNEL_NAMES } from "./kernels.ts";
import * as JsKernels from "./js/kernels.ts";
import * as JsLowrank from "./js/lowrank.ts";
import * as GpuKernels from "./webgpu/kernels.ts";

const js: JsKernels.JsKernels = { ...JsKernels, ...JsLowrank };
const gpu: GpuKernels.GpuKernels = GpuKernels;

Deno.test("kernel contract: every kernel is a function of the js and the WebGPU runtime", () => {
  for (const name of KERNEL_NAMES) {
    assert.equal(typeof js[name], "function", `js: ${name}`);
    assert.equal(typeof gpu[name], "function", `webgpu: ${name}`);
  }
});
