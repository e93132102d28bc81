/**
 * @file WGSL building blocks shared by the WebGPU kernels: the parameter block, the entry point with a
 * flat workgroup index, binding declarations, the device-side report function, and memoised sources.
 *
 * Every kernel runs workgroups of 64 invocations; the tiled ones (GEMM, attention) stage tiles in
 * workgroup memory between barriers (llvmpipe compiles those slowly and runs them slower than plain
 * global loads, so there `Gpu.tiling` is off and register-only forms run). Dispatches are folded into
 * up to three dimensions; `wg` is the flat workgroup index and `gid = 64·wg + lid`.
 */
import type { Gpu, GpuTensor } from "./device.ts";

/** Invocations per workgroup. */
export const WG = 64;

/** [0, 1, …, n − 1]: indices for unrolled WGSL lines. */
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Binding 0: up to 64 u32 parameter words; `pu(i)` reads word i, `pf(i)` its f32 bits. */
const PARAMS = `struct Params { v: array<vec4<u32>, 16> }
@group(0) @binding(0) var<uniform> P: Params;
fn pu(i: u32) -> u32 { return P.v[i / 4u][i % 4u]; }
fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }
`;

/** Opens `main`, defining `wg` (flat workgroup index), `lid` and `gid`. Close with "}". */
const MAIN = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let wg = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  let gid = wg * ${WG}u + lid;
`;

/**
 * Records a device-side error: the lowest reporting site of the batch wins (dispatches run in order,
 * so later sites skip once an earlier one reported) and keeps its smallest position.
 */
const REPORT = `fn report(site: u32, pos: u32) {
  if (atomicLoad(&E[0]) < site) { return; }
  atomicMin(&E[0], site);
  atomicMin(&E[1], pos);
}
`;

/** One storage binding: name, "read" or "read_write", element type. */
export type Binding = readonly [name: string, access: "read" | "read_write", type: string];

/**
 * A kernel source: bindings 1.. in order, helper functions, then the body of `main`. A binding named
 * E must be `array<atomic<u32>>` (the status buffer); it also brings `report`.
 */
export function kernelSource(bindings: readonly Binding[], body: string, helpers = ""): string {
  const decls = bindings.map(([name, access, type], i) =>
    `@group(0) @binding(${i + 1}) var<storage, ${access}> ${name}: array<${type}>;`
  );
  const report = bindings.some(([n]) => n === "E") ? REPORT : "";
  return `${PARAMS}${decls.join("\n")}\n${report}${helpers}${MAIN}${body}\n}\n`;
}

const sources = new Map<string, string>();

/** The source of one kernel variant, built once per key. */
export function source(key: string, build: () => string): string {
  let s = sources.get(key);
  if (s === undefined) sources.set(key, s = build());
  return s;
}

const F32 = new Float32Array(1), U32 = new Uint32Array(F32.buffer);

/** The f32 bit pattern of x as a u32 parameter word. */
export function f32Word(x: number): number {
  F32[0] = x;
  return U32[0]!;
}

/** The f32 value of a u32 bit pattern. */
export function wordF32(bits: number): number {
  U32[0] = bits;
  return F32[0]!;
}

/** Records a dispatch of `invocations` invocations (rounded up to whole workgroups). */
export function run(
  gpu: Gpu,
  name: string,
  code: string,
  words: readonly number[],
  tensors: readonly GpuTensor[],
  invocations: number,
): void {
  gpu.dispatch(name, code, words.map((w) => w >>> 0), tensors, Math.ceil(invocations / WG));
}

/** Copies the word at the reported position of `src` into the status value word (if `site` reported). */
export function fixup(gpu: Gpu, site: number, src: GpuTensor): void {
  const code = source("errfix", () =>
    kernelSource(
      [["S", "read", "u32"], ["E", "read_write", "atomic<u32>"]],
      `  if (gid != 0u) { return; }
  if (atomicLoad(&E[0]) == pu(0u)) { atomicStore(&E[2], S[atomicLoad(&E[1])]); }`,
    ));
  run(gpu, "errfix", code, [site], [src, gpu.status], 1);
}
