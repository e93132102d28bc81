/**
 * @file Host side of the WebAssembly low-rank kernels (lowrank_module.ts): its own memory, module
 * instance and worker pool (independent of the GEMM's; the thread count follows `gemmThreads`),
 * the copy of row segments into the memory, one job record per ≤ JOB_ROWS rows of a segment, and
 * the float64 sums of the jobs' partials.
 *
 * Segments are the unit of the math: an accumulate segment adds Σ_j φ_k(k_j)[v_j, 1] over its keys
 * to a float64 state; a read segment reads its queries against one float64 state (scaled by the
 * q-side coefficients and rounded to float32 once per state). Jobs of a segment are summed in
 * float64 here, so each float32 sum inside the kernel covers at most one slab (KB rows).
 */
import type { FeatureTable } from "../lowrank.ts";
import { align, gemmThreads } from "./gemm.ts";
import { growMemory, nextJob, runJob, startWorkers, workerThreads } from "./threads.ts";
import { ACC_TILES, JOB_BYTES, KB, LCTL, lowrankModule, READ_TILES } from "./lowrank_module.ts";

/** 2 GiB: the memory's maximum (virtual reservation; it grows on demand). */
const MAX_PAGES = 32768;
/** Bytes of segment data (rows, partials, states) per batch of jobs. */
const BATCH_BYTES = 64 << 20;
/** Jobs with fewer multiply-adds than this in all run on the calling thread. */
const PARALLEL_MIN_MACS = 1 << 20;
/** Rows per job at most (a multiple of KB). */
const JOB_ROWS = 16 * KB;
/** Job records per run: the claim word counts them in 16 bits. */
const MAX_JOBS = 0xfff0;

interface Runtime {
  readonly memory: WebAssembly.Memory;
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly accJob: (job: number, scratch: number) => void;
  readonly readJob: (job: number, scratch: number) => void;
  readonly run: ((thread: number) => void) | null;
  readonly workers: { unref?(): void }[];
  job: number;
  f32: Float32Array;
  i32: Int32Array;
  f64: Float64Array;
}

const KEY = Symbol.for("varc.wasm.lowrank.v1");
const state = ((globalThis as Record<symbol, unknown>)[KEY] ??= { runtime: undefined }) as {
  runtime: Runtime | null | undefined;
};

// deno-lint-ignore no-explicit-any
type Any = any;

/** The runtime (built once), or null where WebAssembly SIMD is unavailable. */
function init(): Runtime | null {
  if (state.runtime !== undefined) return state.runtime;
  state.runtime = null;
  try {
    if (typeof WebAssembly !== "object") return null;
    const shared = typeof SharedArrayBuffer === "function" && workerThreads() !== null;
    const cfg = { relaxed: true, shared, initialPages: 1, maximumPages: MAX_PAGES };
    cfg.relaxed = WebAssembly.validate(lowrankModule(cfg));
    const bytes = lowrankModule(cfg);
    if (!WebAssembly.validate(bytes)) return null;
    const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared } as WebAssembly.MemoryDescriptor);
    const ex = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: memory } }).exports as Any;
    state.runtime = {
      memory,
      bytes,
      accJob: ex.acc_job,
      readJob: ex.read_job,
      run: ex.run ?? null,
      workers: [],
      job: 0,
      f32: new Float32Array(memory.buffer),
      i32: new Int32Array(memory.buffer),
      f64: new Float64Array(memory.buffer),
    };
  } catch {
    state.runtime = null;
  }
  return state.runtime;
}

/** Whether the WebAssembly low-rank kernels are available. */
export function lowrankWasmAvailable(): boolean {
  return init() !== null;
}

/** Threads for a call of `macs` multiply-adds: the GEMM's thread count (workers started here as needed). */
function threadsFor(rt: Runtime, macs: number): number {
  if (!rt.run || macs < PARALLEL_MIN_MACS) return 1;
  return startWorkers(rt.workers, gemmThreads(), { bytes: rt.bytes, memory: rt.memory, seq: LCTL.SEQ });
}

function reserve(rt: Runtime, bytes: number): boolean {
  if (!growMemory(rt.memory, bytes, MAX_PAGES)) return false;
  if (rt.f32.buffer !== rt.memory.buffer || rt.f32.length * 4 !== rt.memory.buffer.byteLength) {
    rt.f32 = new Float32Array(rt.memory.buffer);
    rt.i32 = new Int32Array(rt.memory.buffer);
    rt.f64 = new Float64Array(rt.memory.buffer);
  }
  return true;
}

/** Runs `total` job records of the kind in the control block on `threads` threads. */
function runJobs(rt: Runtime, threads: number, total: number, read: boolean): void {
  const ctl = rt.i32;
  if (threads <= 1) {
    const job = read ? rt.readJob : rt.accJob, at = ctl[LCTL.JOBS]!, scratch = ctl[LCTL.SCRATCH]!;
    for (let j = 0; j < total; j++) job(at + j * JOB_BYTES, scratch);
    return;
  }
  rt.job = nextJob(rt.job);
  runJob(ctl, LCTL, rt.job, total, () => rt.run!(0));
}

/** Shapes of one call: monomials and the padded sizes. */
interface Layout {
  readonly r: number;
  readonly rp: number;
  readonly wp: number;
  readonly dvp: number;
}

/**
 * Writes the control block and the monomial table, and sizes one scratch area per thread that may
 * wake; returns the layout, the scratch range and the first free byte (nothing is reserved yet).
 */
function setup(rt: Runtime, D: number, Dv: number, table: FeatureTable): [Layout, number, number] {
  const r = table.r, dvp = (Dv + 3) & ~3, vectors = dvp / 4;
  const accTile = Math.min(vectors, 2), { rm } = ACC_TILES[accTile]!, rp = Math.ceil(r / rm) * rm;
  // the read tile padding Dv + 1 least (the taller one on a tie)
  const pad = (m: number) => Math.ceil((Dv + 1) / m) * m;
  const readTile = Object.keys(READ_TILES).map(Number).reduce((a, b) => pad(b) <= pad(a) ? b : a);
  const wp = pad(readTile);
  const fOff = align(4 * D * KB), bufOff = align(fOff + 4 * rp * KB);
  const scratchBytes = align(bufOff + 4 * KB * Math.max(dvp, wp));
  const tableAt = LCTL.BYTES, scratchAt = align(tableAt + 8 * r);
  const slots = rt.run ? rt.workers.length + 1 : 1;
  const ctl = rt.i32;
  ctl[LCTL.SCRATCH] = scratchAt, ctl[LCTL.SCRATCH_BYTES] = scratchBytes;
  ctl[LCTL.D] = D, ctl[LCTL.DV] = Dv, ctl[LCTL.DVP] = dvp, ctl[LCTL.R] = r, ctl[LCTL.RP] = rp, ctl[LCTL.WP] = wp;
  ctl[LCTL.TABLE] = tableAt, ctl[LCTL.F] = fOff, ctl[LCTL.BUF] = bufOff, ctl[LCTL.ACC_TILE] = accTile;
  ctl[LCTL.READ_TILE] = readTile;
  for (let i = 1; i < r; i++) {
    ctl[tableAt / 4 + 2 * (i - 1)] = table.parent[i]! * KB * 4;
    ctl[tableAt / 4 + 2 * (i - 1) + 1] = table.variable[i]! * KB * 4;
  }
  return [{ r, rp, wp, dvp }, scratchAt, scratchAt + slots * scratchBytes];
}

/** A job: rows [from, from + n) of a segment. */
interface Job<S> {
  readonly seg: S;
  readonly from: number;
  readonly n: number;
}

/** Jobs of ≤ jobRows(·) rows of every segment, largest first (load balance). */
function split<S extends { readonly n: number }>(segments: readonly S[], threads: number): Job<S>[] {
  const rows = segments.reduce((s, x) => s + x.n, 0);
  // about four jobs per thread for small calls, at most JOB_ROWS rows each
  const step = Math.min(JOB_ROWS, Math.max(KB, Math.ceil(rows / (4 * threads) / KB) * KB));
  const jobs: Job<S>[] = [];
  for (const seg of segments) {
    for (let j = 0; j < seg.n; j += step) jobs.push({ seg, from: j, n: Math.min(step, seg.n - j) });
  }
  return jobs.sort((a, b) => b.n - a.n);
}

/**
 * Cuts jobs into batches of ≤ BATCH_BYTES of data (one job at least) and ≤ MAX_JOBS records:
 * `place(job, at)` lays a job out from byte `at` and returns the next free byte. Returns the batches
 * (job range, places, record address) and the end of the largest, so that the memory is reserved
 * once, before any job runs.
 */
function plan<S, P>(
  jobs: readonly Job<S>[],
  base: number,
  place: (job: Job<S>, at: number, first: boolean) => [P, number],
): { batches: { j0: number; j1: number; places: P[]; recs: number }[]; end: number } {
  const batches: { j0: number; j1: number; places: P[]; recs: number }[] = [];
  let end = base;
  for (let j0 = 0; j0 < jobs.length;) {
    let at = base, j1 = j0;
    const places: P[] = [];
    while (j1 < jobs.length && j1 - j0 < MAX_JOBS) {
      const [p, next] = place(jobs[j1]!, at, j1 === j0);
      if (j1 > j0 && next - base > BATCH_BYTES) break;
      places.push(p), at = next, j1++;
    }
    batches.push({ j0, j1, places, recs: at });
    end = Math.max(end, at + JOB_BYTES * (j1 - j0));
    j0 = j1;
  }
  return { batches, end };
}

/** Keys [n] of k at float offset `k` (rows of D) and v at `v` (rows of Dv); adds into `into` [r, Dv+1]. */
export interface AccumulateSegment {
  readonly k: number;
  readonly v: number;
  readonly n: number;
  readonly into: Float64Array;
}

/**
 * into += Σ_j φ_k(k_j)[v_j, 1] (float64 [r, Dv + 1]) for every segment; false (nothing added) when
 * the kernels are unavailable or the rows do not fit the memory.
 */
export function accumulateWasm(
  k: Float32Array,
  v: Float32Array,
  D: number,
  Dv: number,
  table: FeatureTable,
  segments: readonly AccumulateSegment[],
): boolean {
  const rt = init();
  if (!rt) return false;
  const w = Dv + 1, rows = segments.reduce((s, x) => s + x.n, 0);
  const threads = threadsFor(rt, rows * table.r * w);
  const [{ r, rp, dvp }, scratchAt, base] = setup(rt, D, Dv, table);
  const jobs = split(segments, threads), pBytes = align(8 * rp * (dvp + 1));
  // per job: its keys [n, D], values [n, Dvp] and partial P [rp, Dvp] + row sums [rp] (float64)
  const { batches, end } = plan(jobs, base, ({ n }, at) => {
    const vAt = align(at + 4 * n * D), p = align(vAt + 4 * n * dvp);
    return [{ k: at, v: vAt, p }, align(p + pBytes)];
  });
  if (!reserve(rt, end)) return false;
  rt.f32.fill(0, scratchAt / 4, base / 4); // the padding rows of every Fᵀ are read as 0
  for (const { j0, j1, places, recs } of batches) {
    const { f32, i32, f64 } = rt;
    for (let j = j0; j < j1; j++) {
      const { seg, from, n } = jobs[j]!, { k: kAt, v: vAt, p } = places[j - j0]!;
      f32.set(k.subarray(seg.k + from * D, seg.k + (from + n) * D), kAt / 4);
      const src = seg.v + from * Dv;
      if (Dv === dvp) f32.set(v.subarray(src, src + n * Dv), vAt / 4);
      else {
        for (let i = 0; i < n; i++) {
          f32.set(v.subarray(src + i * Dv, src + i * Dv + Dv), vAt / 4 + i * dvp);
          f32.fill(0, vAt / 4 + i * dvp + Dv, vAt / 4 + (i + 1) * dvp);
        }
      }
      const rec = (recs + (j - j0) * JOB_BYTES) / 4;
      i32[rec] = kAt, i32[rec + 1] = vAt, i32[rec + 2] = n, i32[rec + 3] = p;
    }
    i32[LCTL.KIND] = 0, i32[LCTL.JOBS] = recs;
    runJobs(rt, threads, j1 - j0, false);
    // the jobs' float64 partials into their segments' states
    for (let j = j0; j < j1; j++) {
      const into = jobs[j]!.seg.into, p = places[j - j0]!.p / 8, sums = p + rp * dvp;
      for (let i = 0; i < r; i++) {
        const o = i * w, po = p + i * dvp;
        for (let c = 0; c < Dv; c++) into[o + c]! += f64[po + c]!;
        into[o + Dv]! += f64[sums + i]!;
      }
    }
  }
  return true;
}

/** Queries [n] of q at float offset `q` (rows of D) against state S [r, Dv+1]; outputs at `o` (rows of Dv). */
export interface ReadSegment {
  readonly q: number;
  readonly o: number;
  readonly n: number;
  readonly S: Float64Array;
}

/**
 * out rows = (φ_q(q)ᵀS)[:Dv] / (φ_q(q)ᵀS)[Dv] for every segment, with the q-side coefficients
 * folded into S (S'ᵀ[c, i] = fround(coef_i·S[i, c])); false (nothing written) when the kernels are
 * unavailable or the rows do not fit the memory.
 */
export function readWasm(
  q: Float32Array,
  out: Float32Array,
  D: number,
  Dv: number,
  table: FeatureTable,
  segments: readonly ReadSegment[],
): boolean {
  const rt = init();
  if (!rt) return false;
  const w = Dv + 1, rows = segments.reduce((s, x) => s + x.n, 0);
  const threads = threadsFor(rt, rows * table.r * w);
  const [{ r, wp }, scratchAt, base] = setup(rt, D, Dv, table);
  const jobs = split(segments, threads), sBytes = align(4 * wp * r);
  // per batch: each state S'ᵀ [wp, r] once (before its first job); per job: queries [n, D], outputs [n, Dv]
  let seen = new Set<Float64Array>();
  const { batches, end } = plan(jobs, base, ({ seg, n }, at, first) => {
    if (first) seen = new Set();
    const s = seen.has(seg.S) ? -1 : at;
    if (s >= 0) seen.add(seg.S), at += sBytes;
    const oAt = align(at + 4 * n * D);
    return [{ q: at, o: oAt, s }, align(oAt + 4 * n * Dv)];
  });
  if (!reserve(rt, end)) return false;
  rt.f32.fill(0, scratchAt / 4, base / 4);
  const { coef } = table;
  for (const { j0, j1, places, recs } of batches) {
    const { f32, i32 } = rt, states = new Map<Float64Array, number>();
    for (let j = j0; j < j1; j++) {
      const { seg, from, n } = jobs[j]!, { q: qAt, o: oAt, s } = places[j - j0]!;
      if (s >= 0) {
        // S'ᵀ [wp, r]: rows c < Dv + 1 are coef ∘ S[:, c], the rest 0
        const st = s / 4, S = seg.S;
        for (let i = 0; i < r; i++) {
          const ci = coef[i]!;
          for (let c = 0; c < w; c++) f32[st + c * r + i] = ci * S[i * w + c]!;
        }
        f32.fill(0, st + w * r, st + wp * r);
        states.set(S, s);
      }
      f32.set(q.subarray(seg.q + from * D, seg.q + (from + n) * D), qAt / 4);
      const rec = (recs + (j - j0) * JOB_BYTES) / 4;
      i32[rec] = qAt, i32[rec + 1] = n, i32[rec + 2] = states.get(seg.S)!, i32[rec + 3] = oAt;
    }
    i32[LCTL.KIND] = 1, i32[LCTL.JOBS] = recs;
    runJobs(rt, threads, j1 - j0, true);
    for (let j = j0; j < j1; j++) {
      const { seg, from, n } = jobs[j]!, oAt = places[j - j0]!.o / 4;
      out.set(f32.subarray(oAt, oAt + n * Dv), seg.o + from * Dv);
    }
  }
  return true;
}
