/** @file The `js` backend: float32 kernels in plain JS, the reference every other target is checked against. */
import type { KernelName } from "../../../runtime/kernels.ts";
import type { Backend, Emitted } from "../backend.ts";
import { bundleModule } from "../bundle.ts";
import { dts } from "../declarations.ts";
import { generateSource, type HostTarget } from "../host.ts";

/** Kernels of `runtime/js/lowrank.ts` (the others are in `runtime/js/kernels.ts`). */
const LOWRANK = new Set<KernelName>(["lowrankAttention", "lowrankState", "lowrankRead"]);

/** Host code for `runtime/js/kernels.ts` and `runtime/js/lowrank.ts`. */
export const jsTarget: HostTarget = {
  name: "js",
  prelude: [
    `import * as K from "varc:kernels";`,
    `import * as LR from "varc:lowrank";`,
    `import { bindInputs, type HostTensor, tapper } from "varc:exec";`,
    `export { guardStats } from "varc:lowrank";`,
  ],
  call: (kernel, args) => `${LOWRANK.has(kernel) ? "LR" : "K"}.${kernel}(${args})`,
  input: (expr) => `${expr} as never`,
  extraParam: "",
  async: false,
  read: (value) => value,
  // computed values go back to the kernels' pool of large arrays; inputs belong to the caller
  release: (value, input) => input === undefined ? `K.release(${value}); ${value} = null!;` : `${value} = null!;`,
  weightType: "Float32Array",
};

/** The reference backend: float32 JS, always available. */
export const jsBackend: Backend = {
  name: "js",
  async emit(module, options) {
    const source = generateSource(module, jsTarget, { checkNumerics: options.checkNumerics });
    const bundle = await bundleModule(source, { minify: options.minify });
    return { source, bundle, dts: dts("hostModule") } satisfies Emitted;
  },
};
