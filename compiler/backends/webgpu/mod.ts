/**
 * @file The `webgpu` backend: the same host code as `js`, calling WGSL kernels (`runtime/webgpu/`)
 * on device tensors. Weights are uploaded once; all dispatches of an entry go into one command
 * buffer; only outputs (and requested taps) are read back.
 */
import type { Backend, Emitted } from "../backend.ts";
import { bundleModule } from "../bundle.ts";
import { DTS, generateSource, type HostTarget } from "../host.ts";

/** Host code for `runtime/webgpu/kernels.ts` (same kernel names and arguments, a device first). */
export const webgpuTarget: HostTarget = {
  name: "webgpu",
  prelude: [
    `import * as K from "varc:kernels";`,
    `import * as LR from "varc:lowrank";`,
    `import * as G from "varc:webgpu";`,
    `import { Gpu } from "varc:webgpu-device";`,
    `import { bindInputs, type HostTensor, tapper } from "varc:exec";`,
    `export { Gpu } from "varc:webgpu-device";`,
  ],
  fn: (kernel) => `G.${kernel}(gpu, `,
  input: (expr) => `gpu.upload(${expr})`,
  extraParam: "gpu: Gpu",
  async: true,
  read: (value) => `await gpu.read(${value})`,
  release: (value) => `gpu.release(${value}); ${value} = null!;`,
  weightType: "G.GpuTensor",
};

/** WebGPU: WGSL kernels driven from generated host code. */
export const webgpuBackend: Backend = {
  name: "webgpu",
  async emit(module, options) {
    const source = generateSource(module, webgpuTarget, { checkNumerics: options.checkNumerics });
    const bundle = await bundleModule(source, { minify: options.minify });
    return { source, bundle, dts: DTS } satisfies Emitted;
  },
};
