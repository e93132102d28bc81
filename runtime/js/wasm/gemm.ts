/**
 * @file Host side of the WebAssembly SIMD128 GEMM: feature detection, one memory per process, the
 * copy of operands into it, and the optional worker pool that splits large products across cores.
 *
 * Operands are copied into the module's memory (for the dot-product tiles, rows of a and w padded
 * to a multiple of 4 floats with zeros; for the broadcast tiles, a packed into panels of 8 rows),
 * checkpoint weights already there are read in place, the kernel runs, and the result is copied
 * out; the memory grows as needed and is kept for later calls. With worker threads (Deno and Node, through `node:worker_threads`, when
 * SharedArrayBuffer exists) the memory is shared: the caller publishes a job in the control block,
 * wakes the workers, computes chunks itself, and blocks in `Atomics.wait` until the last chunk is
 * done, so the call stays synchronous. Workers are unref'd and never keep a process alive.
 *
 * Bundled copies of this file (one per compiled model) share one runtime through a global symbol.
 */
import { CTL, type GemmConfig, gemmModule, JOB, NN, NT, NT_ACT } from "./gemm_module.ts";
import { growMemory, nextJob, runJob, startWorkers, workerThreads } from "./threads.ts";

/** Which GEMM implementation `gemmNT` uses: "auto" (WASM when available and large enough) or "js". */
export type GemmBackend = "auto" | "js";

/** Products with fewer multiply-adds than this stay in JS (call and copy overhead). */
export const WASM_MIN_MACS = 1 << 12;

/** Products with at least this many multiply-adds are split across threads. */
export const PARALLEL_MIN_MACS = 1 << 20;

const PAGE = 65536;
/** 4 GiB, the wasm32 limit: the memory's maximum (virtual reservation only; it grows on demand). */
const MAX_PAGES = 65536;
/** Resident allocations stop this far below the maximum, leaving room for the kernels' scratch. */
const SCRATCH_HEADROOM = 768 * 2 ** 20;

const TILE = { rm: 2, rn: 4, kc: 1024, mc: 128 } as const;

/** Attention tiles and blocks: S [64, 128] of scratch (32 KiB) per thread. */
export const ATTENTION = { rm: 4, rv: 2, qb: 64, kb: 128 } as const;

/** The instantiated module and its worker pool. */
export interface Runtime {
  readonly relaxed: boolean;
  readonly memory: WebAssembly.Memory;
  readonly gemm: (...args: number[]) => void;
  /** nt(w, apack, bias, out, t, Mp, N, K, act, m0, m1, n0, n1): the broadcast NT GEMM on the calling thread. */
  readonly nt: (...args: number[]) => void;
  /** nn(apack, b, bias, out, K, ldb, ldo, m0, m1, n0, n1): the NN GEMM on the calling thread. */
  readonly nn: (...args: number[]) => void;
  /** wino(job, thread): one Winograd band on the calling thread. */
  readonly wino: (job: number, thread: number) => void;
  /** wino4(job, thread): one Winograd F(4×4, 3×3) band on the calling thread. */
  readonly wino4: (job: number, thread: number) => void;
  /** wino_pad(ch): one channel of a Winograd input padded on the calling thread. */
  readonly winoPad: (ch: number) => void;
  /** wino_u(w, Co, Ci, cop, dst): Winograd-transformed 3×3 weights (winograd_module.ts). */
  readonly winoU: (w: number, Co: number, Ci: number, cop: number, dst: number) => void;
  /** gn_stats(x, S, stats, ch) and gn_apply(x, S, affine, ch, silu): norm_module.ts. */
  readonly gnStats: (x: number, S: number, stats: number, ch: number) => void;
  readonly gnApply: (x: number, S: number, affine: number, ch: number, silu: number) => void;
  /** pack8(src, dst, panels, K): rows [8·panels, K] (K a multiple of 4) as the broadcast kernel's panels. */
  readonly pack8: (src: number, dst: number, panels: number, K: number) => void;
  /** transpose4(src, dst, R, C, lds, ldd): dst[c][r] = src[r][c], R rounded up to 4, C a multiple of 4. */
  readonly transpose4: (src: number, dst: number, R: number, C: number, lds: number, ldd: number) => void;
  /** attn_job(job, scratch): one attention job record on the calling thread. */
  readonly attnJob: (job: number, scratch: number) => void;
  /** run(thread): the pool entry (shared memory only). */
  readonly run: ((thread: number) => void) | null;
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly workers: { unref?(): void }[];
  threads: number;
  job: number;
  f32: Float32Array;
  i32: Int32Array;
  /**
   * Resident region [CTL.BYTES, arenaEnd): checkpoint tensors that kernels read in place (no copy
   * per call); freed ranges wait in `arenaFree` (sorted, coalesced). Scratch starts at arenaEnd.
   */
  arenaEnd: number;
  arenaFree: { at: number; bytes: number }[];
  /** Every `memory.buffer` seen: a typed array over one of them lives in this memory. */
  readonly buffers: WeakSet<ArrayBufferLike>;
}

interface State {
  runtime: Runtime | null | undefined;
  backend: GemmBackend;
  threads: number | undefined;
}

const KEY = Symbol.for("varc.wasm.gemm.v1");
const state: State = ((globalThis as Record<symbol, unknown>)[KEY] ??= {
  runtime: undefined,
  backend: "auto",
  threads: undefined,
}) as State;

/** Selects the GEMM backend ("js" forces the plain JS kernel, e.g. for tests and benchmarks). */
export function setGemmBackend(backend: GemmBackend): void {
  state.backend = backend;
}

/** The GEMM backend in use: "wasm" only when selected and supported. */
export function gemmBackend(): "wasm" | "js" {
  return state.backend === "auto" && init() ? "wasm" : "js";
}

/**
 * Threads for large products (the caller plus threads − 1 workers); undefined restores the
 * default, the number of logical cores. 1 disables the workers.
 */
export function setGemmThreads(threads: number | undefined): void {
  state.threads = threads === undefined ? undefined : Math.max(1, Math.floor(threads));
}

/** Threads a large product would use now (1 without worker support). */
export function gemmThreads(): number {
  const rt = init();
  return rt ? ensureWorkers(rt) : 1;
}

function config(relaxed: boolean, shared: boolean, initialPages: number, maximumPages = MAX_PAGES): GemmConfig {
  return { ...TILE, attention: ATTENTION, relaxed, shared, initialPages, maximumPages };
}

/**
 * The kernels' module as this runtime builds it, on a private memory of exactly `pages` pages (not
 * shared, no `run`): for measurements that run a kernel in a worker of their own.
 */
export function privateModule(relaxed: boolean, pages: number): Uint8Array<ArrayBuffer> {
  return gemmModule(config(relaxed, false, pages, pages));
}

// deno-lint-ignore no-explicit-any
type Any = any;

/** Builds and instantiates the module once; null when WebAssembly SIMD is not available. */
function init(): Runtime | null {
  if (state.runtime !== undefined) return state.runtime;
  state.runtime = null;
  try {
    if (typeof WebAssembly !== "object") return null;
    const shared = typeof SharedArrayBuffer === "function" && workerThreads() !== null;
    const relaxed = WebAssembly.validate(gemmModule(config(true, shared, 1)));
    const bytes = gemmModule(config(relaxed, shared, 1));
    if (!WebAssembly.validate(bytes)) return null;
    const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared } as WebAssembly.MemoryDescriptor);
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: memory } });
    const ex = instance.exports as Any;
    state.runtime = {
      relaxed,
      memory,
      bytes,
      gemm: ex.gemm,
      nt: ex.nt,
      nn: ex.nn,
      wino: ex.wino,
      wino4: ex.wino4,
      winoPad: ex.wino_pad,
      winoU: ex.wino_u,
      gnStats: ex.gn_stats,
      gnApply: ex.gn_apply,
      pack8: ex.pack8,
      transpose4: ex.transpose4,
      attnJob: ex.attn_job,
      run: ex.run ?? null,
      workers: [],
      threads: 1,
      job: 0,
      f32: new Float32Array(memory.buffer),
      i32: new Int32Array(memory.buffer),
      arenaEnd: CTL.BYTES,
      arenaFree: [],
      buffers: new WeakSet([memory.buffer]),
    };
  } catch {
    state.runtime = null;
  }
  return state.runtime;
}

/** Starts workers up to the requested thread count; returns the threads available. */
export function ensureWorkers(rt: Runtime): number {
  const want = state.threads ?? Math.max(1, (globalThis as Any).navigator?.hardwareConcurrency ?? 1);
  if (!rt.run) return 1;
  rt.threads = startWorkers(rt.workers, want, { bytes: rt.bytes, memory: rt.memory, seq: CTL.SEQ });
  return rt.threads;
}

/** Makes the memory at least `bytes` long; false when it cannot grow that far. */
export function reserve(rt: Runtime, bytes: number): boolean {
  if (!growMemory(rt.memory, bytes, MAX_PAGES)) return false;
  if (rt.f32.buffer !== rt.memory.buffer || rt.f32.length * 4 !== rt.memory.buffer.byteLength) {
    rt.buffers.add(rt.memory.buffer);
    rt.f32 = new Float32Array(rt.memory.buffer);
    rt.i32 = new Int32Array(rt.memory.buffer);
  }
  return true;
}

/** First byte of the scratch area, after the resident region (kernels lay out their operands from here). */
export const scratchBase = (rt: Runtime): number => align(rt.arenaEnd);

/** Byte address of a typed array that lives in the module's memory, else -1. */
export function residentAt(rt: Runtime, x: ArrayBufferView): number {
  return rt.buffers.has(x.buffer) ? x.byteOffset : -1;
}

/** Frees resident ranges whose owner was collected. */
const arenaRegistry = new FinalizationRegistry<{ at: number; bytes: number }>((range) => {
  const rt = state.runtime;
  if (rt) arenaFree(rt, range);
});

function arenaFree(rt: Runtime, range: { at: number; bytes: number }): void {
  const list = rt.arenaFree;
  let i = 0;
  while (i < list.length && list[i]!.at < range.at) i++;
  list.splice(i, 0, { ...range });
  // coalesce with the next and the previous range, then give a free tail back to the scratch area
  const next = list[i + 1], cur = list[i]!;
  if (next && cur.at + cur.bytes === next.at) cur.bytes += next.bytes, list.splice(i + 1, 1);
  const prev = list[i - 1];
  if (prev && prev.at + prev.bytes === cur.at) prev.bytes += cur.bytes, list.splice(i, 1);
  const last = list.at(-1);
  if (last && last.at + last.bytes === rt.arenaEnd) rt.arenaEnd = last.at, list.pop();
}

/**
 * `bytes` of resident memory (64-byte aligned) that stays valid until the returned array is
 * collected: kernels read typed arrays over it in place. Null when the memory is not shared (a
 * non-shared memory detaches its buffer when it grows) or the allocation would leave less than
 * SCRATCH_HEADROOM for the kernels' scratch; callers then use ordinary memory.
 */
export function residentBytes(bytes: number): Uint8Array | null {
  const rt = wasmRuntime();
  if (!rt || !rt.run) return null;
  const size = align(Math.max(1, bytes));
  let at = -1;
  const hole = rt.arenaFree.findIndex((r) => r.bytes >= size);
  if (hole >= 0) {
    const r = rt.arenaFree[hole]!;
    at = r.at, r.at += size, r.bytes -= size;
    if (r.bytes === 0) rt.arenaFree.splice(hole, 1);
  } else {
    if (rt.arenaEnd + size > MAX_PAGES * PAGE - SCRATCH_HEADROOM || !reserve(rt, rt.arenaEnd + size)) return null;
    at = rt.arenaEnd;
    rt.arenaEnd += size;
  }
  const view = new Uint8Array(rt.memory.buffer, at, bytes);
  rt.buffers.add(view.buffer);
  arenaRegistry.register(view, { at, bytes: size });
  return view;
}

/** Owners of the views `residentCopy` returns: a range is freed once its owner is collected. */
const residentOwners = new WeakMap<Float32Array, Uint8Array>();

/**
 * A copy of x in resident memory, where loadModel puts checkpoint tensors (kernels read it in
 * place), valid while the returned view lives; null where `residentBytes` gives none.
 */
export function residentCopy(x: Float32Array): Float32Array | null {
  const home = residentBytes(x.byteLength);
  if (!home) return null;
  const view = new Float32Array(home.buffer, home.byteOffset, x.length);
  view.set(x);
  residentOwners.set(view, home);
  return view;
}

/** Copies rows [rows, K] into memory at float index `at` with row stride Kp (zero padding). */
export function copyRows(dst: Float32Array, at: number, src: Float32Array, rows: number, K: number, Kp: number): void {
  if (K === Kp) return void dst.set(src.subarray(0, rows * K), at);
  for (let r = 0; r < rows; r++) {
    dst.set(src.subarray(r * K, r * K + K), at + r * Kp);
    dst.fill(0, at + r * Kp + K, at + (r + 1) * Kp);
  }
}

/** Rounds a byte address up to a cache line (arithmetic, not bitwise: addresses reach 4 GiB, past int32). */
export const align = (bytes: number) => Math.ceil(bytes / 64) * 64;

/** The runtime when the WASM backend is selected and available, else null. */
export function wasmRuntime(): Runtime | null {
  return state.backend === "auto" ? init() : null;
}

/** An activation a GEMM may apply to its finished outputs. */
export type GemmAct = keyof typeof NT_ACT;

/**
 * out[M, N] = a[M, K] · w[N, K]ᵀ (+ bias) in WebAssembly: "fused" when `act` was applied too (the
 * broadcast kernel's epilogue), "plain" when it was not (the caller applies it), false (nothing
 * written) when the WASM path is off, unavailable or the operands do not fit its memory.
 */
export function gemmNTWasm(
  a: Float32Array,
  M: number,
  K: number,
  w: Float32Array,
  N: number,
  bias: Float32Array | null,
  out: Float32Array,
  act: GemmAct = "none",
): "fused" | "plain" | false {
  const rt = wasmRuntime();
  if (!rt) return false;
  if (M >= NT_MIN_ROWS) return ntWasm(rt, a, M, K, w, N, bias, out, NT_ACT[act]) && "fused";
  const Kp = (K + 3) & ~3;
  // a checkpoint tensor already in the memory (rows contiguous, K a multiple of 4) is read in place
  const wIn = K === Kp ? residentAt(rt, w) : -1;
  const aAt = scratchBase(rt), wAt = wIn >= 0 ? wIn : align(aAt + M * Kp * 4);
  const bAt = align(wIn >= 0 ? aAt + M * Kp * 4 : wAt + N * Kp * 4);
  const oAt = align(bAt + N * 4), end = oAt + M * N * 4;
  if (!reserve(rt, end)) return false;
  const f32 = rt.f32;
  copyRows(f32, aAt / 4, a, M, K, Kp);
  if (wIn < 0) copyRows(f32, wAt / 4, w, N, K, Kp);
  if (bias) f32.set(bias.subarray(0, N), bAt / 4);
  const biasAt = bias ? bAt : 0;
  const macs = M * N * Kp;
  const threads = macs >= PARALLEL_MIN_MACS ? ensureWorkers(rt) : 1;
  if (threads <= 1) rt.gemm(aAt, wAt, biasAt, oAt, M, N, Kp, 0, M, 0, N);
  else parallel(rt, threads, aAt, wAt, biasAt, oAt, M, N, Kp);
  out.set(f32.subarray(oAt / 4, oAt / 4 + M * N));
  return "plain";
}

/**
 * Rows of a from which `gemmNTWasm` takes the broadcast kernel (`nt`): below, padding a to whole
 * panels of 8 rows costs more than the dot-product tiles lose.
 */
export const NT_MIN_ROWS = 16;

/**
 * The broadcast NT GEMM: a packed as panels of 8 rows, w read in place (resident) or copied as is,
 * out [Mp, Nq] (rows padded to whole cache lines) copied back row by row when Nq > N.
 */
function ntWasm(
  rt: Runtime,
  a: Float32Array,
  M: number,
  K: number,
  w: Float32Array,
  N: number,
  bias: Float32Array | null,
  out: Float32Array,
  act: number,
): boolean {
  const { nr, kc, nq } = NT;
  const Mp = Math.ceil(M / nr) * nr, Nq = Math.ceil(N / nq) * nq;
  const wIn = residentAt(rt, w);
  const aAt = scratchBase(rt), wAt = wIn >= 0 ? wIn : align(aAt + Mp * K * 4);
  const bAt = align(wIn >= 0 ? aAt + Mp * K * 4 : wAt + N * K * 4);
  const oAt = align(bAt + Nq * 4), tAt = align(oAt + Mp * Nq * 4);
  const end = K > kc ? tAt + Nq * Mp * 4 : tAt;
  // a is copied in as rows (zero rows up to Mp) and packed by SIMD transposes where K allows
  const stage = K % 4 === 0 ? align(end) : -1;
  if (!reserve(rt, stage >= 0 ? stage + Mp * K * 4 : end)) return false;
  const f32 = rt.f32;
  const threads = M * N * K >= PARALLEL_MIN_MACS ? ensureWorkers(rt) : 1;
  if (stage >= 0) {
    f32.set(a.subarray(0, M * K), stage / 4), f32.fill(0, stage / 4 + M * K, stage / 4 + Mp * K);
    // packed on all threads, about 4 chunks each (a panel is 32·K bytes at both ends)
    const panels = Mp / nr, step = Math.ceil(panels / (4 * threads)), ctl = rt.i32;
    ctl[CTL.A] = stage, ctl[CTL.W] = aAt, ctl[CTL.M] = panels, ctl[CTL.KP] = K, ctl[CTL.M_STEP] = step;
    runChunks(rt, threads, JOB.pack8, Math.ceil(panels / step), (c) => {
      const at = c * step * 32 * K;
      rt.pack8(stage + at, aAt + at, Math.min(step, panels - c * step), K);
    });
  } else packPanels(f32, aAt / 4, a, M, K, nr);
  if (wIn < 0) f32.set(w.subarray(0, N * K), wAt / 4);
  if (bias) f32.set(bias.subarray(0, N), bAt / 4), f32.fill(0, bAt / 4 + N, bAt / 4 + Nq);
  const biasAt = bias ? bAt : 0;
  if (threads <= 1) rt.nt(wAt, aAt, biasAt, oAt, tAt, Mp, N, K, act, 0, Mp, 0, N);
  else {
    // chunks: NQ columns of out × blocks of rows of a (multiples of 16: the partial sums t are
    // [Nq, Mp], 16 floats a cache line), at least 8 per thread where a has the rows, so that the
    // threads finish within one small chunk of each other. Narrow chunks cost no extra traffic: MR
    // rows of w stream a's K block whatever the chunk's width. (Calls alternated in one process, 2
    // threads: n = 1024 ran 2–16 % faster than in 8 wide chunks, which split it 576 : 448 columns;
    // n = 512 a few % faster than with 4 chunks per thread; n = 256 the same.)
    const parts = Math.max(1, Math.min(Math.ceil((8 * threads) / (Nq / nq)), Math.floor(Mp / 16)));
    const nStep = nq, mStep = Math.ceil(Mp / parts / 16) * 16;
    const mCount = Math.ceil(Mp / mStep), total = mCount * Math.ceil(N / nStep);
    const ctl = rt.i32;
    ctl[CTL.KIND] = JOB.nt, ctl[CTL.A] = wAt, ctl[CTL.W] = aAt, ctl[CTL.BIAS] = biasAt, ctl[CTL.OUT] = oAt;
    ctl[CTL.LDB] = tAt, ctl[CTL.M] = Mp, ctl[CTL.N] = N, ctl[CTL.KP] = K, ctl[CTL.LDO] = act;
    ctl[CTL.M_STEP] = mStep, ctl[CTL.N_STEP] = nStep, ctl[CTL.M_COUNT] = mCount;
    runShared(rt, total);
  }
  const o = oAt / 4;
  if (Nq === N) out.set(f32.subarray(o, o + M * N));
  else for (let m = 0; m < M; m++) out.set(f32.subarray(o + m * Nq, o + m * Nq + N), m * N);
  return true;
}

/**
 * Publishes one job in the control block and runs it on `threads` threads. Chunks are blocks of
 * rows (multiples of the tile height) when a has more rows than w and enough for about 4 chunks
 * per thread, else blocks of columns.
 */
function parallel(
  rt: Runtime,
  threads: number,
  aAt: number,
  wAt: number,
  biasAt: number,
  oAt: number,
  M: number,
  N: number,
  Kp: number,
): void {
  const want = 4 * threads;
  let mStep = M, nStep = N;
  // split the larger operand, so that each of its rows is read by one thread only
  if (M > N && M >= want * TILE.rm) mStep = Math.ceil(M / want / TILE.rm) * TILE.rm;
  else nStep = Math.max(TILE.rn, Math.ceil(N / want / TILE.rn) * TILE.rn);
  const mCount = Math.ceil(M / mStep), total = mCount * Math.ceil(N / nStep);
  const ctl = rt.i32;
  ctl[CTL.KIND] = JOB.gemm, ctl[CTL.A] = aAt, ctl[CTL.W] = wAt, ctl[CTL.BIAS] = biasAt, ctl[CTL.OUT] = oAt;
  ctl[CTL.M] = M, ctl[CTL.N] = N, ctl[CTL.KP] = Kp;
  ctl[CTL.M_STEP] = mStep, ctl[CTL.N_STEP] = nStep, ctl[CTL.M_COUNT] = mCount;
  runShared(rt, total);
}

/**
 * Runs the job described in the control block (KIND and its fields set) as `total` (< MAX_CHUNKS)
 * chunks on the caller and every worker, and returns when all are done.
 */
export function runShared(rt: Runtime, total: number): void {
  rt.job = nextJob(rt.job);
  runJob(rt.i32, CTL, rt.job, total, () => rt.run!(0));
}

/**
 * Runs `total` chunks of a job of `kind` (the caller has set its other control-block fields) on
 * `threads` threads, or calls `each(chunk)` for every chunk on the calling thread when threads ≤ 1.
 */
export function runChunks(
  rt: Runtime,
  threads: number,
  kind: number,
  total: number,
  each: (chunk: number) => void,
): void {
  if (threads > 1) return void (rt.i32[CTL.KIND] = kind, runShared(rt, total));
  for (let c = 0; c < total; c++) each(c);
}

/** Packed panels of resident weights (see `packedPanels`), keyed by the weight's view. */
const panelCache = new WeakMap<Float32Array, Uint8Array>();

/** Rows of an NN GEMM's a rounded up to whole panels. */
export const panelRows = (M: number): number => Math.ceil(M / NN.mr) * NN.mr;

/**
 * a [M, K] as panels [⌈M/mr⌉][K][mr] (rows past M are zeros), written at float index `at` of `dst`:
 * the NN kernel's A (mr = MR) and the broadcast NT kernel's a (mr = 8).
 */
export function packPanels(
  dst: Float32Array,
  at: number,
  a: Float32Array,
  M: number,
  K: number,
  mr: number = NN.mr,
): void {
  // writes in order (one panel after another), reading mr rows of a side by side
  for (let p = 0; p * mr < M; p++) {
    const rows = Math.min(mr, M - p * mr), base = at + p * K * mr, src = p * mr * K;
    if (rows < mr) dst.fill(0, base, base + K * mr);
    if (rows === 8) {
      // the broadcast kernel's full panels, unrolled (a generic inner loop runs at half the speed)
      for (let k = 0, d = base, s = src; k < K; k++, d += 8, s++) {
        dst[d] = a[s]!, dst[d + 1] = a[s + K]!, dst[d + 2] = a[s + 2 * K]!, dst[d + 3] = a[s + 3 * K]!;
        dst[d + 4] = a[s + 4 * K]!, dst[d + 5] = a[s + 5 * K]!, dst[d + 6] = a[s + 6 * K]!, dst[d + 7] = a[s + 7 * K]!;
      }
      continue;
    }
    for (let k = 0; k < K; k++) {
      const d = base + k * mr;
      for (let j = 0, s = src + k; j < rows; j++, s += K) dst[d + j] = a[s]!;
    }
  }
}

/**
 * Byte address of a's panels: packed once and kept while a lives when a is resident (a checkpoint
 * tensor), else packed at `scratchAt` (the caller reserved panelRows(M)·K floats there).
 */
export function packedPanels(rt: Runtime, a: Float32Array, M: number, K: number, scratchAt: number): number {
  const bytes = panelRows(M) * K * 4;
  if (residentAt(rt, a) >= 0) {
    let home = panelCache.get(a);
    if (!home) {
      const got = residentBytes(bytes);
      if (got) {
        home = got;
        packPanels(new Float32Array(got.buffer, got.byteOffset, bytes / 4), 0, a, M, K);
        panelCache.set(a, home);
      }
    }
    if (home) return home.byteOffset;
  }
  if (!reserve(rt, scratchAt + bytes)) throw new RangeError(`NN GEMM: ${bytes} bytes of panels do not fit`);
  packPanels(rt.f32, scratchAt / 4, a, M, K);
  return scratchAt;
}

/**
 * out = A · b (+ bias per row) over rows [0, Mp) and columns [0, Np) (multiples of MR and 8), all
 * addresses in bytes (A packed panels, bias 0 for none, b rows ldb apart, out rows ldo apart); split
 * across the threads when large enough.
 */
export function nnRun(
  rt: Runtime,
  aAt: number,
  bAt: number,
  ldb: number,
  biasAt: number,
  oAt: number,
  ldo: number,
  Mp: number,
  Np: number,
  K: number,
): void {
  const macs = Mp * Np * K;
  const threads = macs >= PARALLEL_MIN_MACS ? ensureWorkers(rt) : 1;
  if (threads <= 1) return void rt.nn(aAt, bAt, biasAt, oAt, K, ldb, ldo, 0, Mp, 0, Np);
  // chunks: about 4 per thread, over columns when there are enough, else over panels
  const want = 4 * threads;
  let mStep = Mp, nStep = Np;
  if (Np >= want * NN.nr) nStep = Math.ceil(Np / want / NN.nr) * NN.nr;
  else mStep = Math.max(NN.mr, Math.ceil(Mp / want / NN.mr) * NN.mr);
  const mCount = Math.ceil(Mp / mStep), total = mCount * Math.ceil(Np / nStep);
  const ctl = rt.i32;
  ctl[CTL.KIND] = JOB.nn, ctl[CTL.A] = aAt, ctl[CTL.W] = bAt, ctl[CTL.BIAS] = biasAt, ctl[CTL.OUT] = oAt;
  ctl[CTL.M] = Mp, ctl[CTL.N] = Np, ctl[CTL.KP] = K, ctl[CTL.LDB] = ldb, ctl[CTL.LDO] = ldo;
  ctl[CTL.M_STEP] = mStep, ctl[CTL.N_STEP] = nStep, ctl[CTL.M_COUNT] = mCount;
  runShared(rt, total);
}
