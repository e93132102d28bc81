/**
 * @file Host side of the WebAssembly GroupNorm (norm_module.ts): x is copied into the GEMM module's
 * memory, per-channel statistics run on all threads, the host combines them per group in float64
 * and writes each channel's scale and shift (`groupAffine`, as the JS kernel does), the normalisation (+ SiLU) runs in place on all
 * threads, and the result is copied out.
 */
import { CTL, JOB } from "./gemm_module.ts";
import { align, ensureWorkers, PARALLEL_MIN_MACS, reserve, runChunks, scratchBase, wasmRuntime } from "./gemm.ts";
import { NORM_S_MULTIPLE } from "./norm_module.ts";
import { groupAffine } from "../loops.ts";

/**
 * out = GroupNorm(x [B, C, S]; w, b [C]; groups, eps), then SiLU when `silu`; false (nothing
 * written) when the WASM path is off, S is not a multiple of NORM_S_MULTIPLE, or x does not fit.
 */
export function groupNormWasm(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  B: number,
  C: number,
  S: number,
  groups: number,
  eps: number,
  silu: boolean,
  out: Float32Array,
): boolean {
  const rt = wasmRuntime();
  if (!rt || S % NORM_S_MULTIPLE !== 0) return false;
  const channels = B * C, n = channels * S;
  const xAt = scratchBase(rt), statsAt = align(xAt + n * 4), affineAt = align(statsAt + channels * 16);
  if (!reserve(rt, affineAt + channels * 16)) return false;
  rt.f32.set(x.subarray(0, n), xAt / 4);
  const threads = n >= PARALLEL_MIN_MACS ? ensureWorkers(rt) : 1;
  const ctl = rt.i32;
  ctl[CTL.A] = xAt, ctl[CTL.M] = S, ctl[CTL.KP] = silu ? 1 : 0;
  ctl[CTL.W] = statsAt;
  runChunks(rt, threads, JOB.gnStats, channels, (ch) => rt.gnStats(xAt, S, statsAt, ch));
  const stats = new Float64Array(rt.memory.buffer, statsAt, 2 * channels);
  groupAffine(stats, w, b, C, groups, S, eps, new Float64Array(rt.memory.buffer, affineAt, 2 * channels));
  ctl[CTL.W] = affineAt;
  runChunks(rt, threads, JOB.gnApply, channels, (ch) => rt.gnApply(xAt, S, affineAt, ch, silu ? 1 : 0));
  out.set(rt.f32.subarray(xAt / 4, xAt / 4 + n));
  return true;
}
