/**
 * @file The `webgpu` backend: the same host code as `js`, calling WGSL kernels (`runtime/webgpu/`)
 * on device tensors. Weights are uploaded once; all dispatches of an entry go into one command
 * buffer; only outputs (and requested taps) are read back.
 */
import { CompileError, nodeError } from "../../diagnostics.ts";
import type { IrModule } from "../../ir/node.ts";
import { Op } from "../../ir/ops.ts";
import type { Backend, Emitted } from "../backend.ts";
import { bundleModule } from "../bundle.ts";
import { dts } from "../declarations.ts";
import { generateSource, type HostTarget } from "../host.ts";

/** Host code for `runtime/webgpu/kernels.ts` (the contract's kernels and argument records, after the device). */
export const webgpuTarget: HostTarget = {
  name: "webgpu",
  prelude: [
    `import * as K from "varc:kernels";`,
    `import * as LR from "varc:lowrank";`,
    `import * as G from "varc:webgpu";`,
    `import { Gpu } from "varc:webgpu-device";`,
    `import { bindInputs, type HostTensor, tapper, type Tensor } from "varc:exec";`,
    `export { Gpu } from "varc:webgpu-device";`,
    `export { twice } from "varc:webgpu";`,
  ],
  call: (kernel, args) => `G.${kernel}(gpu, ${args})`,
  input: (expr) => `G.asDevice(gpu, ${expr})`,
  extraParam: "gpu: Gpu",
  async: true,
  read: (value) => `await gpu.read(${value})`,
  // Device tensors given as inputs belong to the caller: only uploaded copies of host data are released.
  release: (value, input) =>
    input === undefined
      ? `gpu.release(${value}); ${value} = null!;`
      : `if (G.isHost(input(${JSON.stringify(input)}))) gpu.release(${value}); ${value} = null!;`,
  keep: (name, value, owned) => `keep.has(${name}) ? ${value} : await gpu.${owned ? "readOnce" : "read"}(${value})`,
  deviceInputs: true,
  weightType: "G.GpuTensor",
  before: (what) => `gpu.origin = ${JSON.stringify(what)}; `,
};

/** WebGPU's default `maxStorageBufferBindingSize` (adapters may allow more; the device checks again). */
export const DEFAULT_MAX_BINDING = 128 * 2 ** 20;

/** Tensors that cannot be bound even for one batch row are compile errors at their spec node. */
function checkLimits(module: IrModule, maxBinding: number): void {
  const problems = module.nodes.filter((n) => n.op !== Op.Reshape).flatMap((n) => {
    const bytes = n.type!.shape.reduce<number>((a, d) => a * (d === "B" ? 1 : d), 4);
    if (bytes <= maxBinding) return [];
    return [nodeError(
      "webgpu-limit",
      `Tensor [${n.type!.shape.join(", ")}] of ${n.op} needs ${
        (bytes / 2 ** 20).toFixed(1)
      } MiB per batch row, more than the ${(maxBinding / 2 ** 20).toFixed(0)} MiB a WebGPU storage binding may hold`,
      n,
      [{ message: "Use --target js for this model, or reduce the width, schedule or vocabulary" }],
    )];
  });
  if (problems.length > 0) throw new CompileError(problems);
}

/** WebGPU: WGSL kernels driven from generated host code. */
export const webgpuBackend: Backend = {
  name: "webgpu",
  async emit(module, options) {
    checkLimits(module, DEFAULT_MAX_BINDING);
    const source = generateSource(module, webgpuTarget, { checkNumerics: options.checkNumerics });
    const bundle = await bundleModule(source, { minify: options.minify });
    return { source, bundle, dts: dts("deviceModule") } satisfies Emitted;
  },
};
