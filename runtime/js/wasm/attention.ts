/**
 * @file Host side of the fused WebAssembly attention (attention_module.ts): copies q, kᵀ and v of
 * a call into the module's memory once (heads in batches of at most 64 MiB; k as rows, then
 * transposed into panels by the module's `transpose4` where D is a multiple of 4), writes one job record
 * per (head, block of ≤ qb queries of a group), runs the jobs on the GEMM's worker pool (or on the
 * calling thread) and copies the output back.
 */
import { JOB_BYTES, scratchBytes } from "./attention_module.ts";
import {
  align,
  ATTENTION,
  copyRows,
  ensureWorkers,
  PARALLEL_MIN_MACS,
  reserve,
  runChunks,
  scratchBase,
  wasmRuntime,
} from "./gemm.ts";
import { MAX_CHUNKS } from "./threads.ts";
import { CTL, JOB } from "./gemm_module.ts";

/** Consecutive queries [i0, i1) that see the same keys [lo, hi). */
export interface QueryGroup {
  readonly i0: number;
  readonly i1: number;
  readonly lo: number;
  readonly hi: number;
}

/** Bytes of q, kᵀ, v and output per batch of heads (one head at least). */
const BATCH_BYTES = 64 << 20;

/** A job's place within its head: first query, queries, keys [lo, hi). */
type Block = readonly [number, number, number, number];

/**
 * out [BH, Tq, Dv] = softmax(scale·q kᵀ) v per query group, for q [BH, Tq, D], k [BH, Tk, D], v
 * [BH, Tk, Dv], in WebAssembly; false (nothing written) when the WASM backend is off or
 * unavailable, the scale is not a finite float32, or the operands do not fit its memory. Heads go
 * in batches of about `batchBytes` of operands (at least one head each).
 */
export function attentionWasm(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  BH: number,
  Tq: number,
  Tk: number,
  D: number,
  Dv: number,
  scale: number,
  groups: readonly QueryGroup[],
  out: Float32Array,
  batchBytes = BATCH_BYTES,
): boolean {
  const rt = wasmRuntime();
  if (!rt || !Number.isFinite(Math.fround(scale))) return false;
  const { kb } = ATTENTION, Np = Math.ceil(Tk / kb) * kb, Dvp = (Dv + 3) & ~3;
  const blocks = jobBlocks(groups);
  const perHead = 4 * (Tq * D + D * Np + Tk * Dvp + Tq * Dvp);
  const fit = Math.max(1, Math.floor(batchBytes / perHead));
  const hb = Math.min(BH, fit, Math.floor((MAX_CHUNKS - 1) / Math.max(1, blocks.length)));
  if (hb < 1) return false;
  const macs = blocks.reduce((s, [, rows, lo, hi]) => s + rows * (hi - lo), 0) * (D + Dv) * BH;
  const threads = macs >= PARALLEL_MIN_MACS ? ensureWorkers(rt) : 1;
  // every worker wakes for a job, so each needs its scratch
  const scratchAt = scratchBase(rt), slots = threads > 1 ? rt.workers.length + 1 : 1;
  const qAt = align(scratchAt + slots * scratchBytes(ATTENTION)), kAt = align(qAt + 4 * hb * Tq * D);
  // 16 bytes of slack: the last key block of a head may read up to 3 columns past its panels
  const vAt = align(kAt + 4 * hb * D * Np + 16), oAt = align(vAt + 4 * hb * Tk * Dvp);
  const jobsAt = align(oAt + 4 * hb * Tq * Dvp);
  // k rows copied in whole, then transposed into panels by SIMD (D a multiple of 4; 3 rows of slack)
  const stageAt = D % 4 === 0 ? align(jobsAt + hb * blocks.length * JOB_BYTES) : -1;
  const end = stageAt >= 0 ? stageAt + 4 * (hb * Tk + 3) * D : jobsAt + hb * blocks.length * JOB_BYTES;
  if (!reserve(rt, end)) return false;
  const ctl = rt.i32;
  ctl[CTL.JOBS] = jobsAt, ctl[CTL.SCRATCH] = scratchAt;
  ctl[CTL.D] = D, ctl[CTL.DVP] = Dvp;
  rt.f32[CTL.SCALE] = scale;
  for (let h0 = 0; h0 < BH; h0 += hb) {
    const nh = Math.min(hb, BH - h0), f32 = rt.f32;
    f32.set(q.subarray(h0 * Tq * D, (h0 + nh) * Tq * D), qAt / 4);
    if (stageAt >= 0) {
      f32.set(k.subarray(h0 * Tk * D, (h0 + nh) * Tk * D), stageAt / 4);
      for (let h = 0; h < nh; h++) {
        for (let p0 = 0; p0 < Tk; p0 += kb) {
          const from = stageAt + 4 * (h * Tk + p0) * D, to = kAt + 4 * (h * D * Np + p0 * D);
          rt.transpose4(from, to, Math.min(kb, Tk - p0), D, 4 * D, 4 * kb);
        }
      }
    } else for (let h = 0; h < nh; h++) panels(k, (h0 + h) * Tk * D, Tk, D, f32, kAt / 4 + h * D * Np);
    copyRows(f32, vAt / 4, v.subarray(h0 * Tk * Dv, (h0 + nh) * Tk * Dv), nh * Tk, Dv, Dvp);
    let at = jobsAt / 4;
    for (let h = 0; h < nh; h++) {
      for (const [i, rows, lo, hi] of blocks) {
        ctl[at++] = qAt + 4 * (h * Tq + i) * D, ctl[at++] = rows;
        ctl[at++] = kAt + 4 * h * D * Np, ctl[at++] = vAt + 4 * h * Tk * Dvp;
        ctl[at++] = lo, ctl[at++] = hi, ctl[at++] = oAt + 4 * (h * Tq + i) * Dvp;
      }
    }
    runChunks(rt, threads, JOB.attention, nh * blocks.length, (j) => rt.attnJob(jobsAt + j * JOB_BYTES, scratchAt));
    const o = f32.subarray(oAt / 4, oAt / 4 + nh * Tq * Dvp), dst = h0 * Tq * Dv;
    if (Dv === Dvp) out.set(o, dst);
    else for (let r = 0; r < nh * Tq; r++) out.set(o.subarray(r * Dvp, r * Dvp + Dv), dst + r * Dv);
  }
  return true;
}

/** Jobs of one head: groups cut into blocks of ≤ qb queries, largest first (load balance). */
function jobBlocks(groups: readonly QueryGroup[]): Block[] {
  const blocks: Block[] = [];
  for (const { i0, i1, lo, hi } of groups) {
    for (let i = i0; i < i1; i += ATTENTION.qb) blocks.push([i, Math.min(ATTENTION.qb, i1 - i), lo, Math.max(lo, hi)]);
  }
  return blocks.sort((a, b) => b[1] * (b[3] - b[2]) - a[1] * (a[3] - a[2]));
}

/**
 * k [Tk, D] at `from` -> kᵀ panels [⌈Tk / kb⌉, D, kb] at `at`: key j, coordinate d at
 * ((⌊j / kb⌋·D + d)·kb + j mod kb). Columns past Tk are left as they are (masked by the kernel).
 */
function panels(k: Float32Array, from: number, Tk: number, D: number, dst: Float32Array, at: number): void {
  const { kb } = ATTENTION;
  for (let p0 = 0; p0 < Tk; p0 += kb) {
    const n = Math.min(kb, Tk - p0), base = at + p0 * D;
    for (let d = 0; d < D; d++) {
      const row = base + d * kb;
      for (let j = 0, s = from + p0 * D + d; j < n; j++, s += D) dst[row + j] = k[s]!;
    }
  }
}
