/**
 * @file `deno task bench` (bench/cpu.ts): varc side by side with onnxruntime, in one process with
 * interleaved rounds and medians, and seconds per image per target. A kernel sample is the mean of
 * back-to-back calls over at least 20 ms (one call when it takes longer); onnxruntime-node paths with
 * more than one thread are followed by a wait until their spinning threads stop.
 *
 * (0) The WebAssembly SIMD128 multiply-add ceiling on 1 thread and on all cores (bench/simd_ceiling.ts),
 *     measured first: the 100% of the GEMM columns.
 * (a) GEMM, n×n×n (varc's A·Wᵀ layout, W in the WebAssembly memory as a loaded checkpoint tensor,
 *     the output from the runtime's pool as in a model; onnxruntime gets a MatMul with W
 *     pre-transposed as an initializer): varc JS (forced fallback),
 *     varc WASM SIMD on 1 thread and on all threads, onnxruntime-node with 1 and 2 intra-op threads,
 *     onnxruntime-web's wasm backend (1 thread);
 *     GFLOP/s = 2n³/t, as a % of the measured ceiling for the path's thread count.
 * (b) Block-causal attention over the 256/512/1024/2048-px VAR schedules, on the same tensors for
 *     every path: the paper regime (16 heads, β = 0.5, ε = 1e-3; head dim 8: varc exact on the
 *     plain JS kernels and on the WASM ones, varc low-rank, onnxruntime exact; head dims 4 and 16:
 *     varc low-rank against onnxruntime exact) and the official head dim 64 (exact only). onnxruntime's
 *     graph (the same for onnxruntime-node and onnxruntime-web) is MatMul → Softmax → MatMul per
 *     scale against the keys of the scales up to it (the block-causal mask as slices, so no masked
 *     work), with queries in chunks that bound the logits buffer. Errors are measured against a
 *     float64 reference on sampled query rows; the low-rank bound is 2ε/(1−ε)·‖V‖∞. A combination
 *     whose predicted time (previous schedule × work ratio) exceeds 60 s is skipped with a note.
 *     Log-log slopes of time against n (the last side) are fitted per path.
 * (c) Checkpoint load (bench/checkpoint_load.ts): `loadModel` on a d16-shaped random checkpoint
 *     (1.5 GB; with `--quick`, the 0.26 GB VQ-VAE file alone) against reading the same bytes into
 *     buffers sized from `stat`, each timed in a fresh process; rounds alternate the order, medians.
 * (d) Seconds per image, one image at 256 px on seeded random weights, for the tiny and the
 *     d16-shaped model on the js target (WASM GEMM, and plain JS) and the webgpu target: each in
 *     its own `bench/generate.ts` process, so that peak RSS is that generation's. The slow d16
 *     combinations (tens of minutes here) run with `--full` only, and say so in their rows.
 *
 * Writes RESULTS.md and attention_scaling.svg to `--out DIR` (default bench/; with `--quick`,
 * out/bench-quick/). onnxruntime is optional: when a package cannot be loaded the reason is printed
 * and its columns are skipped. `--quick` is a smoke run: the two smallest sizes, one round, a short
 * ceiling, the smaller checkpoint, no d16 generation.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { smallestDegree } from "../compiler/lowrank/poly.ts";
import {
  attention,
  gemmBackend,
  gemmNT,
  gemmThreads,
  type KeyRanges,
  release,
  scaleKeyRanges,
  setGemmBackend,
  setGemmThreads,
} from "../runtime/js/kernels.ts";
import { featureTable, lowrankAttention } from "../runtime/js/lowrank.ts";
import { allocF32 } from "../runtime/js/pool.ts";
import { residentCopy } from "../runtime/js/wasm/gemm.ts";
import { randomF32 } from "../runtime/random.ts";
import { benchLoad } from "./checkpoint_load.ts";
import { type Ceiling, describeCeiling, type KernelRate, measureCeiling, measureKernel } from "./simd_ceiling.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { quick: { type: "boolean" }, full: { type: "boolean" }, out: { type: "string" } },
});
const QUICK = flags.quick ?? false, FULL = flags.full ?? false;
const SKIP_S = 60;
const ROOT = new URL("../", import.meta.url);
const OUT = new URL((flags.out ?? (QUICK ? "out/bench-quick" : "bench")).replace(/\/*$/, "/"), ROOT);

// ---------------------------------------------------------------------------------------------
// Minimal ONNX (protobuf) writer.

/** Protobuf message under construction. */
class Pb {
  readonly b: number[] = [];
  private key(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }
  private varint(v: bigint): void {
    let x = BigInt.asUintN(64, v);
    do {
      const byte = Number(x & 0x7fn);
      x >>= 7n;
      this.b.push(x ? byte | 0x80 : byte);
    } while (x);
  }
  int(field: number, v: number): this {
    this.key(field, 0), this.varint(BigInt(v));
    return this;
  }
  float(field: number, v: number): this {
    this.key(field, 5);
    this.b.push(...new Uint8Array(new Float32Array([v]).buffer));
    return this;
  }
  bytes(field: number, data: Uint8Array | readonly number[]): this {
    this.key(field, 2), this.varint(BigInt(data.length));
    for (let i = 0; i < data.length; i++) this.b.push(data[i]!);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  msg(field: number, m: Pb): this {
    return this.bytes(field, m.b);
  }
}

type Attr = { name: string; i?: number; f?: number; ints?: number[] };

/** An ONNX graph: float32 inputs and outputs, float32/int64 initializers, nodes. */
class Graph {
  readonly nodes: Pb[] = [];
  readonly inits: Pb[] = [];
  readonly inputs: Pb[] = [];
  readonly outputs: Pb[] = [];
  private n = 0;

  private valueInfo(name: string, dims: number[]): Pb {
    const shape = new Pb();
    for (const d of dims) shape.msg(1, new Pb().int(1, d));
    const tensor = new Pb().int(1, 1).msg(2, shape);
    return new Pb().str(1, name).msg(2, new Pb().msg(1, tensor));
  }
  input(name: string, dims: number[]): string {
    this.inputs.push(this.valueInfo(name, dims));
    return name;
  }
  output(name: string, dims: number[]): void {
    this.outputs.push(this.valueInfo(name, dims));
  }
  f32(dims: number[], data: Float32Array): string {
    const name = `c${this.n++}`;
    const t = new Pb();
    for (const d of dims) t.int(1, d);
    t.int(2, 1).str(8, name).bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.inits.push(t);
    return name;
  }
  i64(values: number[]): string {
    const name = `c${this.n++}`;
    const raw = new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer);
    this.inits.push(new Pb().int(1, values.length).int(2, 7).str(8, name).bytes(9, raw));
    return name;
  }
  node(op: string, inputs: string[], attrs: Attr[] = [], out?: string): string {
    const o = out ?? `t${this.n++}`;
    const p = new Pb();
    for (const i of inputs) p.str(1, i);
    p.str(2, o).str(3, `n${this.n++}`).str(4, op);
    for (const a of attrs) {
      const ap = new Pb().str(1, a.name);
      if (a.ints) { for (const v of a.ints) ap.int(8, v); }
      if (a.i !== undefined) ap.int(3, a.i);
      if (a.f !== undefined) ap.float(2, a.f);
      ap.int(20, a.ints ? 7 : a.f !== undefined ? 1 : 2);
      p.msg(5, ap);
    }
    this.nodes.push(p);
    return o;
  }
  model(): Uint8Array {
    const g = new Pb();
    for (const n of this.nodes) g.msg(1, n);
    g.str(2, "g");
    for (const i of this.inits) g.msg(5, i);
    for (const i of this.inputs) g.msg(11, i);
    for (const o of this.outputs) g.msg(12, o);
    return Uint8Array.from(new Pb().int(1, 8).str(2, "varc-bench").msg(7, g).msg(8, new Pb().str(1, "").int(2, 17)).b);
  }
}

// ---------------------------------------------------------------------------------------------
// onnxruntime: `npm:` specifiers pinned here and built at run time, so that neither the type check
// nor the lockfile (the task runs with --no-lock) pulls the packages in; Deno does not run their
// install scripts, and the CPU binary ships inside onnxruntime-node.

const ORT_VERSION = "1.30.0";

interface OrtTensor {
  readonly data: Float32Array;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release?(): Promise<void>;
}
interface Ort {
  Tensor: new (type: "float32", data: Float32Array, dims: number[]) => OrtTensor;
  InferenceSession: { create(model: Uint8Array, options: Record<string, unknown>): Promise<OrtSession> };
  env: { wasm?: { numThreads?: number } };
}

/** One onnxruntime configuration: a package and an intra-op thread count. */
interface OrtPath {
  readonly name: string;
  readonly ort: Ort;
  readonly threads: number;
  readonly options: Record<string, unknown>;
}

const notes: string[] = [];
function note(s: string): void {
  console.log(`note: ${s}`);
  notes.push(s);
}

async function loadOrt(): Promise<OrtPath[]> {
  const paths: OrtPath[] = [];
  const load = async (pkg: string) => {
    const mod = await import(`npm:${pkg}@${ORT_VERSION}`);
    return mod.default ?? mod;
  };
  try {
    const ort = (await load(["onnxruntime", "node"].join("-"))) as Ort;
    for (const threads of [1, 2]) {
      paths.push({
        name: `ORT-node ${threads}T`,
        ort,
        threads,
        options: {
          executionProviders: ["cpu"],
          intraOpNumThreads: threads,
          interOpNumThreads: 1,
          graphOptimizationLevel: "all",
          executionMode: "sequential",
        },
      });
    }
  } catch (e) {
    note(`onnxruntime-node skipped: it could not be loaded (${String(e).split("\n")[0]})`);
  }
  try {
    const ort = (await load(["onnxruntime", "web"].join("-"))) as Ort;
    ort.env.wasm!.numThreads = 1;
    const path: OrtPath = {
      name: "ORT-web wasm 1T",
      ort,
      threads: 1,
      options: { executionProviders: ["wasm"], graphOptimizationLevel: "all" },
    };
    const g = new Graph();
    g.node("Relu", [g.input("x", [4])], [], "y");
    g.output("y", [4]);
    const s = await ort.InferenceSession.create(g.model(), path.options);
    await s.run({ x: new ort.Tensor("float32", new Float32Array(4), [4]) });
    paths.push(path);
  } catch (e) {
    note(`onnxruntime-web skipped: its wasm backend did not run under Deno (${String(e).split("\n")[0]})`);
  }
  return paths;
}

// ---------------------------------------------------------------------------------------------
// Timing helpers.

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** A sample's back-to-back calls add up to at least this (one call when a single call takes longer). */
const BURST_MS = 20;

/**
 * Calls f back to back until the calls add up to BURST_MS, at least once, and returns the mean time
 * per call and the first call's output. A lone call of a multi-threaded path after an idle stretch
 * times a thread wake-up: on this VM the woken worker lands on the caller's core (39 of 40 wakes after
 * the caller ran 5 ms alone) and shares it until the scheduler's next balancing tick, so a 2-thread
 * 256² GEMM timed alone ran no faster than on one thread. In a model the kernels run in such runs.
 */
async function timed<T>(f: () => T | Promise<T>): Promise<{ ms: number; out: T }> {
  const t = performance.now();
  const out = await f();
  let calls = 1;
  while (performance.now() - t < BURST_MS) await f(), calls++;
  return { ms: (performance.now() - t) / calls, out };
}

/**
 * onnxruntime-node's intra-op threads spin after each run (here about 50 ms of CPU in the 200 ms
 * after one 2-thread 256² MatMul): a path timed meanwhile shares a core with them, which slows any
 * multi-threaded path (varc's 2-thread GEMM at n = 256 then ran slower than its 1-thread one). So
 * after such a path the rounds wait for the process to go quiet (less than 1 ms of CPU in a 10 ms
 * window; at most 2 s) before the next path starts.
 */
const SPINS = /^ORT-node [2-9]\d*T/;

/** Runs `f` and, when `path` leaves threads spinning, waits for the process to go quiet. */
async function settled<T>(path: string, f: () => Promise<T>): Promise<T> {
  const out = await f();
  if (!SPINS.test(path)) return out;
  for (const t0 = performance.now(); performance.now() - t0 < 2000;) {
    const before = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, 10));
    const used = process.cpuUsage(before);
    if (used.user + used.system < 1000) return out;
  }
  note(`${path}: this process still used CPU 2 s after a run; the next path was timed anyway`);
  return out;
}

/** Least-squares slope of log t against log n. */
function slope(points: [number, number][]): number {
  const xs = points.map(([n]) => Math.log(n)), ys = points.map(([, t]) => Math.log(t));
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length, my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let sxy = 0, sxx = 0;
  xs.forEach((x, i) => (sxy += (x - mx) * (ys[i]! - my), sxx += (x - mx) ** 2));
  return sxy / sxx;
}

const fmtMs = (ms: number | undefined) =>
  ms === undefined ? "–" : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);

// ---------------------------------------------------------------------------------------------
// (a) GEMM.

interface GemmRow {
  n: number;
  /** Per path, the median sample. */
  ms: Record<string, number>;
  /** Per path, the fastest sample: the statistic of the ceiling, which is the best of its repetitions. */
  bestMs: Record<string, number>;
  /** Per path, the number of timed samples. */
  samples: Record<string, number>;
  copyMs: number;
  err: Record<string, number>;
  /** Per path, the largest sampled |error| over its float32 bound γ_K·Σ_k |a_ik·w_jk| (any order, FMA or not). */
  overBound: Record<string, number>;
}

/** γ_K = K·u / (1 − K·u) with u = 2⁻²⁴: the worst-case relative error of a float32 inner product of length K. */
const gammaF32 = (K: number) => (K * 2 ** -24) / (1 - K * 2 ** -24);

async function benchGemm(orts: OrtPath[], threads: number): Promise<{ rows: GemmRow[]; paths: string[] }> {
  const rows: GemmRow[] = [];
  const paths = [
    "varc JS",
    "varc WASM 1T",
    ...(threads > 1 ? [`varc WASM ${threads}T`] : []),
    ...orts.map((o) => o.name),
  ];
  for (const n of QUICK ? [256, 512] : [256, 512, 1024]) {
    // w is the weight: in the WebAssembly memory, where loadModel puts checkpoint tensors, so the
    // kernels read it in place (onnxruntime gets it as an initializer, prepared once)
    const a = randomF32(n * n, n), w0 = randomF32(n * n, n + 1), w = residentCopy(w0) ?? w0;
    const wT = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) wT[j * n + i] = w[i * n + j]!;
    // float64 reference on 64 sampled outputs
    const samples = Array.from({ length: 64 }, (_, s) => [(s * 97) % n, (s * 61 + 7) % n] as const);
    const ref = samples.map(([i, j]) => {
      let s = 0;
      for (let k = 0; k < n; k++) s += a[i * n + k]! * w[j * n + k]!;
      return s;
    });
    const bounds = samples.map(([i, j]) => {
      let s = 0;
      for (let k = 0; k < n; k++) s += Math.abs(a[i * n + k]! * w[j * n + k]!);
      return gammaF32(n) * s;
    });
    const errs = (out: Float32Array) => samples.map(([i, j], s) => Math.abs(out[i * n + j]! - ref[s]!));
    const overBound: Record<string, number> = {};
    const run: Record<string, () => Promise<Float32Array>> = {};
    // the output comes from the runtime's pool, as every GEMM output inside a model does (`linear`
    // in kernels.ts): a fresh n² array per call would also time the VM mapping new pages (here 2–7 %
    // of a 2-thread call at n = 512, 10–14 % at n = 1024), which generation does not pay. The
    // previous call's output goes back to the pool when the next call starts.
    let last: Float32Array | null = null;
    const varc = (backend: "js" | "auto", t: number) => () => {
      setGemmBackend(backend), setGemmThreads(t);
      if (last) release(last);
      const out = last = allocF32(n * n, { zeroed: false });
      gemmNT(a, n, n, w, n, null, out);
      setGemmBackend("auto"), setGemmThreads(undefined);
      return Promise.resolve(out);
    };
    run["varc JS"] = varc("js", 1);
    run["varc WASM 1T"] = varc("auto", 1);
    if (threads > 1) run[`varc WASM ${threads}T`] = varc("auto", threads);
    for (const o of orts) {
      const g = new Graph();
      g.node("MatMul", [g.input("a", [n, n]), g.f32([n, n], wT)], [], "y");
      g.output("y", [n, n]);
      const session = await o.ort.InferenceSession.create(g.model(), o.options);
      run[o.name] = async () => {
        const r = await session.run({ a: new o.ort.Tensor("float32", a, [n, n]) });
        return r.y!.data;
      };
    }
    const samplesMs: Record<string, number[]> = Object.fromEntries(paths.map((p) => [p, []]));
    const err: Record<string, number> = {};
    const rounds = QUICK ? 1 : n <= 512 ? 7 : 5;
    for (const p of paths) {
      // warm-up and check
      const e = errs(await settled(p, run[p]!));
      err[p] = Math.max(...e), overBound[p] = Math.max(...e.map((x, s) => x / bounds[s]!));
    }
    for (let r = 0; r < rounds; r++) {
      for (const p of paths) {
        if (p === "varc JS" && n === 1024 && r >= 3) continue;
        samplesMs[p]!.push((await settled(p, () => timed(run[p]!))).ms);
      }
    }
    // the copies of a into the WASM memory and of the result out of it, timed alone on buffers of
    // the same sizes
    const scratch = new Float32Array(2 * n * n), outCopy = new Float32Array(n * n);
    const copies: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const t = performance.now();
      scratch.set(a, 0), outCopy.set(scratch.subarray(n * n));
      copies.push(performance.now() - t);
    }
    const ms = Object.fromEntries(paths.map((p) => [p, median(samplesMs[p]!)]));
    const bestMs = Object.fromEntries(paths.map((p) => [p, Math.min(...samplesMs[p]!)]));
    const counts = Object.fromEntries(paths.map((p) => [p, samplesMs[p]!.length]));
    rows.push({ n, ms, bestMs, samples: counts, copyMs: median(copies), err, overBound });
    console.log(
      `gemm n=${n}: ` +
        paths.map((p) => `${p} ${fmtMs(ms[p])} ms (${(2 * n ** 3 / ms[p]! / 1e6).toFixed(1)} GFLOP/s)`).join(", "),
    );
  }
  return { rows, paths };
}

// ---------------------------------------------------------------------------------------------
// (b) Attention.

const SCHEDULES: [string, number[]][] = [
  ["256px", [1, 2, 3, 4, 5, 6, 8, 10, 13, 16]],
  ["512px", [1, 2, 3, 4, 6, 9, 13, 18, 24, 32]],
  ["1024px", [1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64]],
  ["2048px", [1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64, 85, 113, 128]],
];
const H = 16, BETA = 0.5, EPS = 1e-3;
const poly = smallestDegree("chebyshev", BETA, EPS)!;

/** Rows of L2 norm `norm`. */
function rows(n: number, d: number, seed: number, norm: number): Float32Array {
  const x = randomF32(n * d, seed);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < d; c++) s += x[i * d + c]! ** 2;
    for (let c = 0; c < d; c++) x[i * d + c]! *= norm / Math.sqrt(s);
  }
  return x;
}

/** ONNX exact block-causal attention: per scale, softmax(scale·q kᵀ) v against keys [0, end). */
function attentionGraph(schedule: number[], D: number, scale: number): Uint8Array {
  const g = new Graph();
  const L = schedule.reduce((a, n) => a + n * n, 0);
  const q = g.input("q", [H, L, D]), k = g.input("k", [H, L, D]), v = g.input("v", [H, L, D]);
  const axis = g.i64([1]), zero = g.i64([0]);
  const scaleC = scale === 1 ? null : g.f32([1], new Float32Array([scale]));
  const outs: string[] = [];
  let start = 0;
  for (const side of schedule) {
    const end = start + side * side;
    const endC = g.i64([end]);
    const kT = g.node("Transpose", [g.node("Slice", [k, zero, endC, axis])], [{ name: "perm", ints: [0, 2, 1] }]);
    const vs = g.node("Slice", [v, zero, endC, axis]);
    const chunk = Math.max(1, Math.floor((32 << 20) / (H * end))); // logits buffer ≤ 128 MiB
    for (let q0 = start; q0 < end; q0 += chunk) {
      const qc = g.node("Slice", [q, g.i64([q0]), g.i64([Math.min(end, q0 + chunk)]), axis]);
      let s = g.node("MatMul", [qc, kT]);
      if (scaleC) s = g.node("Mul", [s, scaleC]);
      outs.push(g.node("MatMul", [g.node("Softmax", [s], [{ name: "axis", i: -1 }]), vs]));
    }
    start = end;
  }
  g.node("Concat", outs, [{ name: "axis", i: 1 }], "out");
  g.output("out", [H, L, D]);
  return g.model();
}

/** Sampled (head, query) rows: spread over the sequence, with the last query of each late scale. */
function sampleRows(schedule: number[]): [number, number][] {
  const L = schedule.reduce((a, n) => a + n * n, 0);
  const out: [number, number][] = [];
  for (let h = 0; h < H; h++) {
    for (let s = 0; s < 6; s++) out.push([h, Math.floor((s * 7919 + h * 104729) % L)]);
    out.push([h, L - 1]);
  }
  return out;
}

/** float64 attention of one row. */
function refRow(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  L: number,
  D: number,
  scale: number,
  ranges: KeyRanges,
  h: number,
  i: number,
): Float64Array {
  const qi = (h * L + i) * D;
  const lo = ranges.lo[i]!, hi = ranges.hi[i]!;
  const logits = new Float64Array(hi - lo);
  let max = -Infinity;
  for (let j = lo; j < hi; j++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += q[qi + d]! * k[(h * L + j) * D + d]!;
    logits[j - lo] = s * scale, max = Math.max(max, s * scale);
  }
  const acc = new Float64Array(D);
  let sum = 0;
  for (let j = lo; j < hi; j++) {
    const p = Math.exp(logits[j - lo]! - max);
    sum += p;
    for (let d = 0; d < D; d++) acc[d]! += p * v[(h * L + j) * D + d]!;
  }
  return acc.map((x) => x / sum);
}

interface AttnCase {
  schedule: string;
  side: number;
  L: number;
  ms: Record<string, number | undefined>;
  err: Record<string, number | undefined>;
  bound: number;
}

/** One attention regime: its head dim, the low-rank rank where low-rank runs, and the cases. */
interface AttnRun {
  D: number;
  rank: number | undefined;
  paths: string[];
  cases: AttnCase[];
}

const EXACT_JS = "varc exact (JS)", LOWRANK = "varc low-rank (JS)";
const exactWasm = () => `varc exact (WASM ${gemmThreads()}T)`;

/**
 * Attention with head dim D on every path in `include` (varc exact, varc low-rank, onnxruntime):
 * the paper regime (unit keys, queries of norm β, scale 1, so |logit| ≤ β) or the official one
 * (normal rows, scale 1/√D).
 */
async function benchAttention(
  D: number,
  paper: boolean,
  include: { varcExact: boolean | "wasm"; lowrank: boolean; orts: OrtPath[] },
): Promise<AttnRun> {
  const scale = paper ? 1 : 1 / Math.sqrt(D);
  const table = include.lowrank ? featureTable(D, poly.coeffs, scale) : null;
  const wasm = exactWasm();
  const paths = [
    ...(include.varcExact === true ? [EXACT_JS] : []),
    ...(include.varcExact && gemmBackend() === "wasm" ? [wasm] : []),
    ...(include.lowrank ? [LOWRANK] : []),
    ...include.orts.map((o) => `${o.name} exact`),
  ];
  const cases: AttnCase[] = [];
  const last: Record<string, { ms: number; work: number }> = {};
  for (const [name, schedule] of QUICK ? SCHEDULES.slice(0, 2) : SCHEDULES) {
    const L = schedule.reduce((a, n) => a + n * n, 0), side = schedule.at(-1)!;
    const ranges = scaleKeyRanges(schedule, Infinity);
    const sizes = schedule.map((n) => n * n);
    let pairs = 0;
    for (let i = 0; i < L; i++) pairs += ranges.hi[i]! - ranges.lo[i]!;
    const work: Record<string, number> = Object.fromEntries(
      paths.map((p) => [p, p === LOWRANK ? L * table!.r : pairs]),
    );
    const q = paper ? rows(H * L, D, 1, BETA) : randomF32(H * L * D, 1);
    const k = paper ? rows(H * L, D, 2, 1) : randomF32(H * L * D, 2);
    const v = randomF32(H * L * D, 3);
    let vmax = 0;
    for (const x of v) vmax = Math.max(vmax, Math.abs(x));
    const bound = (2 * poly.boundRelError) / (1 - poly.boundRelError) * vmax;
    const run: Record<string, () => Promise<Float32Array>> = {};
    run[EXACT_JS] = () => {
      setGemmBackend("js");
      const out = attention({ q, k, v, BH: H, Tq: L, Tk: L, D, Dv: D, scale, ranges });
      setGemmBackend("auto");
      return Promise.resolve(out);
    };
    run[wasm] = () => Promise.resolve(attention({ q, k, v, BH: H, Tq: L, Tk: L, D, Dv: D, scale, ranges }));
    run[LOWRANK] = () =>
      Promise.resolve(
        lowrankAttention({
          q,
          k,
          v,
          BH: H,
          Tq: L,
          Tk: L,
          D,
          Dv: D,
          scale,
          sizes,
          window: Infinity,
          table: table!,
          beta: BETA,
          exactRanges: ranges,
        }),
      );
    const runnable = paths.filter((p) => {
      const prev = last[p];
      if (!prev) return true;
      const predicted = (prev.ms * work[p]!) / prev.work / 1000;
      if (predicted <= SKIP_S) return true;
      note(`${p}, d ${D}, ${name}: skipped (predicted ${predicted.toFixed(0)} s > ${SKIP_S} s)`);
      return false;
    });
    const sessions: OrtSession[] = [];
    for (const o of include.orts) {
      const p = `${o.name} exact`;
      if (!runnable.includes(p)) continue;
      const session = await o.ort.InferenceSession.create(attentionGraph(schedule, D, scale), o.options);
      sessions.push(session);
      const feeds = {
        q: new o.ort.Tensor("float32", q, [H, L, D]),
        k: new o.ort.Tensor("float32", k, [H, L, D]),
        v: new o.ort.Tensor("float32", v, [H, L, D]),
      };
      run[p] = async () => (await session.run(feeds)).out!.data;
    }
    const samples = sampleRows(schedule);
    const refs = samples.map(([h, i]) => refRow(q, k, v, L, D, scale, ranges, h, i));
    const errOf = (out: Float32Array) => {
      let e = 0;
      samples.forEach(([h, i], s) => {
        for (let d = 0; d < D; d++) e = Math.max(e, Math.abs(out[(h * L + i) * D + d]! - refs[s]![d]!));
      });
      return e;
    };
    const times: Record<string, number[]> = Object.fromEntries(runnable.map((p) => [p, []]));
    const err: Record<string, number | undefined> = {};
    for (let r = 0; r < (QUICK ? 1 : 3); r++) {
      for (const p of runnable) {
        const prev = times[p]!;
        if (r > 0 && prev[0]! > 10_000) continue; // slow: one round
        const { ms, out } = await settled(p, () => timed(run[p]!));
        prev.push(ms);
        if (r === 0) err[p] = errOf(out);
      }
    }
    const ms: Record<string, number | undefined> = {};
    for (const p of runnable) ms[p] = median(times[p]!), last[p] = { ms: ms[p]!, work: work[p]! };
    for (const s of sessions) await s.release?.();
    cases.push({ schedule: name, side, L, ms, err, bound });
    console.log(
      `attention d ${D} ${name} (L ${L}): ` +
        paths.map((p) => `${p} ${fmtMs(ms[p])} ms${err[p] !== undefined ? ` err ${err[p]!.toExponential(1)}` : ""}`)
          .join(", "),
    );
  }
  return { D, rank: table?.r, paths, cases };
}

// ---------------------------------------------------------------------------------------------
// (d) Seconds per image, each generation in its own process.

interface GenResult {
  adapter: string;
  seconds: { transformer: number; sampling: number; fhat: number; decode: number; perImage: number };
  peakRssGiB: number;
}

/** One row of the seconds-per-image table: a result, or why there is none. */
interface GenRow {
  model: string;
  target: string;
  result?: GenResult;
  reason?: string;
}

async function runGenerate(spec: string, target: "js" | "webgpu", gemm: "wasm" | "js"): Promise<GenResult | string> {
  const args = ["run", "-A", "bench/generate.ts", spec, "0", "--target", target, "--gemm", gemm];
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdin: "null",
    env: { NO_COLOR: "1" },
  })
    .output();
  const text = new TextDecoder();
  if (!success) {
    const lines = text.decode(stderr).trim().split("\n").filter((l) => !l.startsWith("scale "));
    return `failed: ${(lines.find((l) => /error/i.test(l)) ?? lines.at(-1) ?? "no output").replaceAll("|", "\\|")}`;
  }
  return JSON.parse(text.decode(stdout)) as GenResult;
}

async function benchGenerate(threads: number): Promise<GenRow[]> {
  const targets = [
    { target: "js", gemm: "wasm", label: `js, WASM GEMM ${threads}T` },
    { target: "js", gemm: "js", label: "js, plain JS GEMM" },
    { target: "webgpu", gemm: "wasm", label: "webgpu" },
  ] as const;
  const models = [["tiny", "examples/var_tiny_a.var.ts"], ["d16", "examples/var_d16.var.ts"]] as const;
  const rows: GenRow[] = [];
  for (const [model, spec] of models) {
    for (const [i, t] of targets.entries()) {
      const row: GenRow = { model, target: t.label };
      rows.push(row);
      if (model === "d16" && QUICK) row.reason = "skipped (--quick)";
      // the tiny model's ratios understate d16's (its GEMMs are too small to show the gap), so no prediction
      else if (model === "d16" && i > 0 && !FULL) row.reason = "skipped (tens of minutes here; pass --full)";
      else {
        const r = await runGenerate(spec, t.target, t.gemm);
        if (typeof r === "string") row.reason = r;
        else row.result = r;
      }
      console.log(
        `generate ${model} ${t.label}: ${row.result ? `${row.result.seconds.perImage.toFixed(2)} s` : row.reason}`,
      );
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Report.

function loadavg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "n/a";
  }
}
const loadAtStart = loadavg();

function machine(ceiling: Ceiling): string[] {
  let cpu = "unknown CPU";
  try {
    cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? cpu;
  } catch { /* not Linux */ }
  let mem = "";
  try {
    const kb = Number(Deno.readTextFileSync("/proc/meminfo").match(/MemTotal:\s*(\d+)/)?.[1]);
    mem = `, ${(kb / 2 ** 20).toFixed(0)} GiB RAM`;
  } catch { /* not Linux */ }
  const form = ceiling.flavour === "relaxed_madd"
    ? "f32x4.relaxed_madd"
    : "f32x4.mul + f32x4.add (relaxed SIMD not available)";
  const chains = ceiling.points.map((p) => p.chains).filter((c, i, a) => a.indexOf(c) === i);
  return [
    `- machine: ${cpu}, ${navigator.hardwareConcurrency} logical cores${mem}`,
    `- Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, ${Deno.build.target}`,
    `- date: ${
      new Date().toISOString().slice(0, 16).replace("T", " ")
    } UTC; load average (1/5/15 min) ${loadAtStart} at the start, ${loadavg()} at the end`,
    "- measure on an idle machine: under load, ratios against native peers flatter varc",
    `- WASM SIMD128 ceiling, measured at the start of this run (bench/simd_ceiling.ts): **${
      ceiling.oneThread.gflops.toFixed(1)
    } GFLOP/s on 1 thread, ${ceiling.allCores.gflops.toFixed(1)} GFLOP/s on ${ceiling.threads} threads**. ` +
    `Each thread runs ${chains.join("/")} independent chains of ${form} on f32x4 accumulators (acc = acc·x + y, ` +
    "registers only, no memory traffic) in an unrolled loop, counted as 4 lanes × 2 flop; on all cores one worker " +
    "per core starts at a shared barrier and the rate is their flops over the slowest worker's time; the best over " +
    `chain counts and repetitions (${ceiling.oneThread.chains} chains on 1 thread, ${ceiling.allCores.chains} on ` +
    "all). The % columns compare 1-thread paths with the 1-thread figure and the others with the all-core one.",
    `- varc WASM GEMM: ${gemmBackend()}, ${gemmThreads()} thread(s), ${
      ceiling.relaxedAvailable ? "relaxed-SIMD multiply-add" : "SIMD128 multiply + add"
    }`,
  ];
}

/**
 * The GEMM kernel's rate on cache-resident operands before and after the GEMM rounds, against the
 * ceiling: when it is well below the ceiling, the machine was not giving whole cores then, and the
 * GEMM rows say as much about the machine as about the kernel.
 */
function kernelLine(): string {
  const pct = (gf: number, of: number) => `${gf.toFixed(1)} GFLOP/s (${((100 * gf) / of).toFixed(0)}%)`;
  const one = (k: KernelRate) =>
    `1 thread ${pct(k.oneThread, ceiling.oneThread.gflops)}, ${k.threads} threads ${
      pct(k.allCores, ceiling.allCores.gflops)
    }`;
  const [Mp, N, K] = kernelBefore.shape;
  return `The broadcast kernel alone on operands that stay in cache (${Mp} × ${N} × ${K} calls, one worker per ` +
    "thread, medians; `measureKernel` in bench/simd_ceiling.ts), as % of the ceiling: just before the GEMM " +
    `rounds ${one(kernelBefore)}; just after ${one(kernelAfter)}. On a shared host it falls well below the ` +
    "ceiling while another tenant shares the cores' issue slots (the kernel issues about three instructions per " +
    "multiply-add, the ceiling's chains one), and the GEMM rows fall with it; where it stays near the ceiling, " +
    "the gap between it and a GEMM row is the whole call's own (copies, packing, the split across threads, " +
    "operands beyond the caches) or a change of the host between the two measurements.";
}

function svg(series: { name: string; points: [number, number][]; slope: number }[]): string {
  const W = 720, Hh = 460, left = 70, right = 250, top = 30, bottom = 50;
  const xs = series.flatMap((s) => s.points.map(([n]) => n)), ys = series.flatMap((s) => s.points.map(([, t]) => t));
  const x0 = Math.log10(Math.min(...xs)) - 0.05, x1 = Math.log10(Math.max(...xs)) + 0.05;
  const y0 = Math.floor(Math.log10(Math.min(...ys))), y1 = Math.ceil(Math.log10(Math.max(...ys)));
  const px = (n: number) => left + ((Math.log10(n) - x0) / (x1 - x0)) * (W - left - right);
  const py = (t: number) => top + (1 - (Math.log10(t) - y0) / (y1 - y0)) * (Hh - top - bottom);
  const colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${Hh}" fill="white"/>`,
    `<text x="${left}" y="18" font-size="14">Block-causal attention, 16 heads: time vs n (last side), log-log; dashed: head dim 64</text>`,
  ];
  for (let e = y0; e <= y1; e++) {
    const y = py(10 ** e);
    out.push(`<line x1="${left}" y1="${y}" x2="${W - right}" y2="${y}" stroke="#ddd"/>`);
    out.push(
      `<text x="${left - 6}" y="${y + 4}" text-anchor="end">${
        10 ** e >= 1000 ? `${10 ** (e - 3)} s` : `${10 ** e} ms`
      }</text>`,
    );
  }
  for (const n of [...new Set(xs)].sort((a, b) => a - b)) {
    const x = px(n);
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${Hh - bottom}" stroke="#ddd"/>`);
    out.push(`<text x="${x}" y="${Hh - bottom + 16}" text-anchor="middle">${n}</text>`);
  }
  out.push(`<text x="${(left + W - right) / 2}" y="${Hh - 12}" text-anchor="middle">n (side of the last scale)</text>`);
  out.push(
    `<rect x="${left}" y="${top}" width="${W - left - right}" height="${
      Hh - top - bottom
    }" fill="none" stroke="#333"/>`,
  );
  series.forEach((s, i) => {
    const c = colors[i % colors.length]!;
    const pts = s.points.map(([n, t]) => `${px(n).toFixed(1)},${py(t).toFixed(1)}`);
    const dash = s.name.endsWith("d 64") ? ` stroke-dasharray="6 3"` : "";
    out.push(`<polyline points="${pts.join(" ")}" fill="none" stroke="${c}" stroke-width="2"${dash}/>`);
    for (const p of pts) {
      const [x, y] = p.split(",");
      out.push(`<circle cx="${x}" cy="${y}" r="3.5" fill="${c}"/>`);
    }
    const ly = top + 10 + i * 20;
    out.push(
      `<line x1="${W - right + 15}" y1="${ly}" x2="${
        W - right + 35
      }" y2="${ly}" stroke="${c}" stroke-width="2"${dash}/>`,
    );
    const label = `${s.name}: slope ${Number.isFinite(s.slope) ? s.slope.toFixed(2) : "–"}`;
    out.push(`<text x="${W - right + 40}" y="${ly + 4}" font-size="11">${label.replaceAll("&", "&amp;")}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------

const orts = await loadOrt();
const threads = gemmThreads();
if (gemmBackend() !== "wasm") note("WebAssembly SIMD is not available: the varc WASM rows show the JS fallback");
console.log(
  `varc GEMM: ${gemmBackend()}, ${threads} thread(s); onnxruntime paths: ${
    orts.map((o) => o.name).join(", ") || "none"
  }`,
);

const ceiling = await measureCeiling({ reps: QUICK ? 3 : 5, runMs: QUICK ? 60 : 200, log: true });
console.log(describeCeiling(ceiling));
const scaling = ceiling.allCores.gflops / ceiling.oneThread.gflops;
if (ceiling.threads > 1 && scaling < 0.8 * ceiling.threads) {
  note(
    `the all-core SIMD128 ceiling is only ${scaling.toFixed(2)}× the 1-thread one on ${ceiling.threads} threads: ` +
      "cores were busy, so the % of it flatters the multi-thread paths",
  );
}
/** The ceiling a path is compared with: the 1-thread figure for 1-thread paths, else the all-core one. */
const ceilingOf = (path: string) =>
  Number(/(\d+)T\b/.exec(path)?.[1] ?? 1) > 1 ? ceiling.allCores.gflops : ceiling.oneThread.gflops;

// the GEMM kernel on cache-resident operands, right before and after the GEMM rounds: how much of
// the cores the machine gave a kernel like it meanwhile (see `measureKernel`)
const kernelRate = (when: string) =>
  measureKernel({ reps: QUICK ? 3 : 5, runMs: QUICK ? 40 : 100 }).then((k) => {
    console.log(
      `GEMM kernel on cache-resident operands ${when}: 1 thread ${k.oneThread.toFixed(1)}, ` +
        `${k.threads} threads ${k.allCores.toFixed(1)} GFLOP/s`,
    );
    return k;
  });
const kernelBefore = await kernelRate("before the GEMM rounds");
const gemm = await benchGemm(orts, threads);
const kernelAfter = await kernelRate("after the GEMM rounds");
const d8 = await benchAttention(8, true, { varcExact: true, lowrank: true, orts });
// head dims 4 and 16: low-rank against the faster onnxruntime-node and onnxruntime-web
const otherDims: AttnRun[] = [];
for (const D of [4, 16]) {
  otherDims.push(
    await benchAttention(D, true, {
      varcExact: "wasm", // the path `--attention auto` takes where low-rank does not pay
      lowrank: true,
      orts: orts.filter((o) => o.name !== "ORT-node 1T"),
    }),
  );
}
const d64 = await benchAttention(64, false, { varcExact: true, lowrank: false, orts });
const load = await benchLoad({ quick: QUICK });
if (typeof load === "string") note(`checkpoint load: ${load}`);
else {
  console.log(
    `checkpoint load: read ${load.readMs.map(fmtMs).join(", ")} ms, loadModel ${load.loadMs.map(fmtMs).join(", ")} ms`,
  );
}
const generation = await benchGenerate(threads);

const md: string[] = [];
const table = (head: string[], rows: string[][]) =>
  md.push(
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
    "",
  );
const ratio = (num: number | undefined, den: number | undefined) =>
  num !== undefined && den !== undefined ? num / den : undefined;
const fmtRatio = (x: number | undefined) => x === undefined ? "–" : `${x.toFixed(2)}×`;
const fmtErr = (x: number | undefined) => x === undefined ? "–" : x.toExponential(1);
const gflops = (n: number, ms: number | undefined) => ms === undefined ? undefined : (2 * n ** 3) / ms / 1e6;

const ORT2 = "ORT-node 2T", WEB = "ORT-web wasm 1T", VARC_GEMM = `varc WASM ${threads}T`, WASM_EXACT = exactWasm();

md.push("# Benchmark: varc against onnxruntime on the CPU, and seconds per image", "", ...machine(ceiling), "");
if (QUICK) {
  md.push(
    "**Quick run** (`--quick`): the two smallest sizes, one round each (so the first includes warm-up), a short ceiling measurement, the smaller checkpoint, no d16 generation; a smoke test, not a measurement.",
    "",
  );
}
md.push(
  `Written by \`deno task bench\` (bench/cpu.ts): kernels in one process, paths interleaved within each round, medians of samples that are each the mean of back-to-back calls over at least ${BURST_MS} ms (one call when a call takes longer); multi-threaded onnxruntime-node paths are followed by a wait until their threads stop spinning; each generation in its own process. The machine is shared, so compare ratios within a table rather than across runs.`,
  "",
);

// the done-when checks of the CPU-speed issue, from the tables below (all on the js target)
const d8Case = (schedule: string) => d8.cases.find((c) => c.schedule === schedule);
const slopes = [d8, ...otherDims, d64].flatMap((run) =>
  run.paths.map((p) => {
    const points = run.cases.filter((c) => c.ms[p] !== undefined).map((c) => [c.side, c.ms[p]!] as [number, number]);
    return { name: `${p}, d ${run.D}`, D: run.D, path: p, points, slope: points.length >= 2 ? slope(points) : NaN };
  }).filter((s) => s.points.length)
);
const worst = (xs: (number | undefined)[], pick: (a: number, b: number) => number) => {
  const ys = xs.filter((x): x is number => x !== undefined);
  return ys.length ? ys.reduce((a, b) => pick(a, b)) : undefined;
};
const exactSlopes = slopes.filter((s) => s.D === 8 && s.path !== LOWRANK && Number.isFinite(s.slope));
const minExact = exactSlopes.reduce<(typeof slopes)[number] | undefined>(
  (m, s) => (m && m.slope <= s.slope ? m : s),
  undefined,
);
const lowSlope = slopes.find((s) => s.D === 8 && s.path === LOWRANK)?.slope;
/** A check: the measured value, the comparison and the goal, shown with `unit` ("%" or "×"). */
interface Check {
  name: string;
  value: number | undefined;
  op: "≤" | "≥";
  goal: number;
  unit: "%" | "×" | "";
}
const bigGemm = gemm.rows.filter((r) => r.n >= 512);
/** The all-core GEMM's fastest sample as % of the all-core ceiling (both the best of their repetitions). */
const gemmPct = (r: GemmRow) => {
  const gf = gflops(r.n, r.bestMs[VARC_GEMM]);
  return gf === undefined ? undefined : (100 * gf) / ceiling.allCores.gflops;
};
const allCore = `${ceiling.allCores.gflops.toFixed(1)} GFLOP/s ${ceiling.threads}-thread WASM SIMD128 ceiling`;
/** varc's attention time for a case: the faster of its WASM paths (what `--attention auto` aims to pick). */
const varcBest = (c: AttnCase) => {
  const ms = [c.ms[LOWRANK], c.ms[exactWasm()]].filter((x): x is number => x !== undefined);
  return ms.length > 0 ? Math.min(...ms) : undefined;
};
const webOverLowrank = [d8, ...otherDims].sort((a, b) => a.D - b.D).map((run): Check => ({
  name: `d ${run.D}, worst schedule where ORT-web runs: ${WEB} exact / varc (faster of low-rank, exact WASM) time`,
  value: worst(run.cases.map((c) => ratio(c.ms[`${WEB} exact`], varcBest(c))), Math.min),
  op: "≥",
  goal: 2,
  unit: "×",
}));
const checks: Check[] = [
  {
    name:
      "GEMM, every path and n: largest sampled error over its float32 bound γ_K·Σ_k abs(a_ik·w_jk) (a wrong result's timing means nothing)",
    value: Math.max(...gemm.rows.flatMap((r) => Object.values(r.overBound))),
    op: "≤",
    goal: 1,
    unit: "",
  },
  ...bigGemm.map((r): Check => ({
    name: `GEMM n=${r.n}: ${VARC_GEMM}, fastest of ${r.samples[VARC_GEMM]} samples, % of the ${allCore}`,
    value: gemmPct(r),
    op: "≥",
    goal: 75,
    unit: "%",
  })),
  {
    name: `GEMM, worst n ≥ 512: ${VARC_GEMM}, fastest sample, % of the all-core ceiling`,
    value: worst(bigGemm.map(gemmPct), Math.min),
    op: "≥",
    goal: 75,
    unit: "%",
  },
  {
    name: `d 8, 1024px: ${ORT2} exact time / low-rank`,
    value: ratio(d8Case("1024px")?.ms[`${ORT2} exact`], d8Case("1024px")?.ms[LOWRANK]),
    op: "≥",
    goal: 3,
    unit: "×",
  },
  {
    name: `d 8, 2048px: ${ORT2} exact time / low-rank`,
    value: ratio(d8Case("2048px")?.ms[`${ORT2} exact`], d8Case("2048px")?.ms[LOWRANK]),
    op: "≥",
    goal: 25,
    unit: "×",
  },
  {
    name: "d 8: log-log slope of low-rank",
    value: Number.isFinite(lowSlope) ? lowSlope : undefined,
    op: "≤",
    goal: 2.3,
    unit: "",
  },
  {
    name: `d 8: smallest log-log slope of an exact path (${minExact?.path ?? "–"})`,
    value: minExact?.slope,
    op: "≥",
    goal: 3.5,
    unit: "",
  },
  {
    name: `d 64, worst schedule: ${WASM_EXACT} / ${ORT2} exact time`,
    value: worst(d64.cases.map((c) => ratio(c.ms[WASM_EXACT], c.ms[`${ORT2} exact`])), Math.max),
    op: "≤",
    goal: 4,
    unit: "×",
  },
  {
    name: `GEMM, worst n: ${WEB} / ${VARC_GEMM} time`,
    value: worst(gemm.rows.map((r) => ratio(r.ms[WEB], r.ms[VARC_GEMM])), Math.min),
    op: "≥",
    goal: 2,
    unit: "×",
  },
  {
    name: `d 64, worst schedule: ${WEB} exact / ${WASM_EXACT} time`,
    value: worst(d64.cases.map((c) => ratio(c.ms[`${WEB} exact`], c.ms[WASM_EXACT])), Math.min),
    op: "≥",
    goal: 2,
    unit: "×",
  },
  ...webOverLowrank,
  {
    name: "checkpoint load: loadModel time / reading the same bytes into a preallocated buffer",
    value: typeof load === "string" ? undefined : median(load.loadMs) / median(load.readMs),
    op: "≤",
    goal: 1.5,
    unit: "×",
  },
];
const checkRows = checks.map(({ name, value, op, goal, unit }) => [
  name,
  value === undefined
    ? "–"
    : `${Math.abs(value) < 0.1 ? value.toExponential(1) : value.toFixed(unit === "%" ? 1 : 2)}${unit}`,
  `${op} ${goal}${unit}`,
  value === undefined ? "not measured" : (op === "≤" ? value <= goal : value >= goal) ? "yes" : "**no**",
]);
md.push("## Checks (the CPU-speed issue's done-when)", "");
md.push("All on the js target; meant for an idle machine.", "");
table(["check", "measured", "goal", "met"], checkRows);
console.log("checks:");
for (const [name, value, goal, met] of checkRows) {
  console.log(`  ${met!.replaceAll("*", "").padEnd(12)} ${value!.padStart(8)} (goal ${goal})  ${name}`);
}

md.push(
  `## GEMM, n×n×n, fp32 (GFLOP/s = 2n³/t; % of the measured WASM SIMD128 ceiling: ${
    ceiling.oneThread.gflops.toFixed(1)
  } GFLOP/s for 1-thread paths, ${ceiling.allCores.gflops.toFixed(1)} for the others)`,
  "",
  "Each cell is the median of the path's samples. The checks compare the all-core path's fastest sample with the ceiling, which is itself the best of its repetitions: on a shared host the median also counts the seconds in which another tenant held the cores' issue slots (the kernel check below). Native code with wider vectors (onnxruntime-node) can pass 100%. varc's w lives in the WebAssembly memory, as a loaded checkpoint tensor does, and its output array comes from the runtime's pool, as a GEMM output inside a model does; onnxruntime gets w as an initializer.",
  "",
  kernelLine(),
  "",
);
table(
  [
    "n",
    ...gemm.paths,
    "WASM copy in/out",
    `${VARC_GEMM}, fastest sample: ms, GFLOP/s (% of ceiling)`,
    `× of ${ORT2}: ${VARC_GEMM} / ${ORT2} time`,
    `varc speed-up over ORT-web: ${WEB} / ${VARC_GEMM} time (goal ≥ 2)`,
  ],
  gemm.rows.map((r) => [
    `${r.n}`,
    ...gemm.paths.map((p) => {
      const gf = gflops(r.n, r.ms[p])!;
      return `${fmtMs(r.ms[p])} ms, **${gf.toFixed(1)}** (${((100 * gf) / ceilingOf(p)).toFixed(1)}%)`;
    }),
    `${fmtMs(r.copyMs)} ms (${((100 * r.copyMs) / r.ms["varc WASM 1T"]!).toFixed(0)}% of WASM 1T)`,
    ((gf) =>
      `${fmtMs(r.bestMs[VARC_GEMM])} ms, **${gf.toFixed(1)}** (${(100 * gf / ceiling.allCores.gflops).toFixed(1)}%)`)(
        gflops(r.n, r.bestMs[VARC_GEMM])!,
      ),
    fmtRatio(ratio(r.ms[VARC_GEMM], r.ms[ORT2])),
    fmtRatio(ratio(r.ms[WEB], r.ms[VARC_GEMM])),
  ]),
);
md.push(`Speed relative to varc JS, and max |error| against float64 on 64 sampled outputs:`, "");
table(
  ["n", ...gemm.paths],
  gemm.rows.map((r) => [
    `${r.n}`,
    ...gemm.paths.map((p) => `${(r.ms["varc JS"]! / r.ms[p]!).toFixed(1)}×, ${r.err[p]!.toExponential(1)}`),
  ]),
);

/** An attention section: times and ratios, then errors (and the low-rank bound). */
const attnSection = (title: string, runs: AttnRun[], ratios: { label: string; num: string; den: string }[]) => {
  const paths = runs[0]!.paths, lowrank = paths.includes(LOWRANK), multi = runs.length > 1;
  const key = ["schedule", "n", "L", ...(multi ? ["d", "rank"] : [])];
  const keyOf = (run: AttnRun, c: AttnCase) => [
    c.schedule,
    `${c.side}`,
    `${c.L}`,
    ...(multi ? [`${run.D}`, `${run.rank}`] : []),
  ];
  const all = runs.flatMap((run) => run.cases.map((c) => [run, c] as const));
  md.push(`## ${title}`, "");
  table(
    [...key, ...paths.map((p) => `${p} ms`), ...ratios.map((r) => r.label)],
    all.map(([run, c]) => [
      ...keyOf(run, c),
      ...paths.map((p) => fmtMs(c.ms[p])),
      ...ratios.map((r) => fmtRatio(ratio(c.ms[r.num], c.ms[r.den]))),
    ]),
  );
  md.push("Max |error| against float64:", "");
  table(
    [...key, ...paths, ...(lowrank ? ["bound 2ε/(1−ε)‖V‖∞"] : [])],
    all.map(([run, c]) => [
      ...keyOf(run, c),
      ...paths.map((p) => fmtErr(c.err[p])),
      ...(lowrank ? [fmtErr(c.bound)] : []),
    ]),
  );
};
const overLowrank = (run: AttnRun) =>
  run.paths.filter((p) => p !== LOWRANK).map((p) => ({ label: `${p} / low-rank`, num: p, den: LOWRANK }));
const regime = `16 heads, β = ${BETA}, ε = ${EPS}, Chebyshev degree ${poly.degree}`;
attnSection(`Attention, paper regime, head dim 8: ${regime}, rank ${d8.rank}`, [d8], overLowrank(d8));
md.push("Time ratios above 1 mean low-rank is faster.", "");
attnSection(`Attention, paper regime, head dims 4 and 16: ${regime}`, otherDims, overLowrank(otherDims[0]!));
attnSection("Attention, official head dim 64: 16 heads, scale 1/√64, exact only", [d64], [
  { label: `× of ${ORT2}: ${WASM_EXACT} / ${ORT2} exact (goal ≤ 4)`, num: WASM_EXACT, den: `${ORT2} exact` },
  {
    label: `varc speed-up over ORT-web: ${WEB} exact / ${WASM_EXACT} (goal ≥ 2)`,
    num: `${WEB} exact`,
    den: WASM_EXACT,
  },
]);
md.push(
  "Errors are max |out − float64| over 7 sampled query rows per head (including the last query). The bound column is the low-rank guarantee 2ε/(1−ε)·‖V‖∞.",
  "",
);

md.push("## Log-log slopes of time against n", "");
table(
  ["path", "n measured", "slope"],
  slopes.map((s) => [s.name, s.points.map(([n]) => n).join(", "), Number.isFinite(s.slope) ? s.slope.toFixed(2) : "–"]),
);
md.push("![attention scaling](attention_scaling.svg)", "");

md.push("## Checkpoint load", "");
if (typeof load === "string") md.push(`Not measured: ${load}.`, "");
else {
  const bytes = load.files.reduce((a, f) => a + f.bytes, 0);
  const gbs = (ms: number) => `${(bytes / ms / 1e6).toFixed(2)} GB/s`;
  md.push(
    `${load.files.map((f) => `${f.name} (${(f.bytes / 1e9).toFixed(3)} GB)`).join(" and ")}: F32 tensors with ` +
      "the official names and shapes of examples/var_d16.var.ts, written to a temp dir just before (so both paths " +
      "read from the page cache). **read**: `Deno.statSync` size, a new `Uint8Array` of it, `Deno.open` and a loop " +
      "of 16 MiB `readSync` calls, per file. **loadModel**: `loadModel` from runtime/mod.ts on the compiled model " +
      `(${load.entries}), as \`varc generate\` loads. Each timed operation runs in a fresh process ` +
      "(bench/checkpoint_load.ts) and times only itself, so both allocate fresh memory; rounds alternate which goes " +
      "first.",
    "",
  );
  table(
    ["", "read ms", "loadModel ms", "loadModel / read (goal ≤ 1.5)"],
    [
      ...load.readMs.map((r, i) => [`round ${i + 1}`, fmtMs(r), fmtMs(load.loadMs[i]), fmtRatio(load.loadMs[i]! / r)]),
      [
        "**median**",
        `${fmtMs(median(load.readMs))} (${gbs(median(load.readMs))})`,
        `${fmtMs(median(load.loadMs))} (${gbs(median(load.loadMs))})`,
        `**${fmtRatio(median(load.loadMs) / median(load.readMs))}**`,
      ],
    ],
  );
}

md.push(
  "## Seconds per image",
  "",
  "One image at 256 px, class 0, seeded random weights, cfg 1.5, top-k min(900, V), top-p 0.96; each generation in its own `bench/generate.ts` process (peak RSS: that process's high-water mark).",
  "",
);
const s2 = (x: number) => x.toFixed(2);
table(
  ["model", "target", "seconds per image", "transformer s", "sampling s", "f̂ s", "decode s", "peak RSS GiB"],
  generation.map(({ model, target, result: r, reason }) =>
    r
      ? [
        model,
        r.adapter ? `${target} on ${r.adapter}` : target,
        `**${s2(r.seconds.perImage)}**`,
        s2(r.seconds.transformer),
        s2(r.seconds.sampling),
        s2(r.seconds.fhat),
        s2(r.seconds.decode),
        s2(r.peakRssGiB),
      ]
      : [model, target, reason!, "–", "–", "–", "–", "–"]
  ),
);
if (notes.length) md.push("## Notes", "", ...notes.map((n) => `- ${n}`), "");

await Deno.mkdir(OUT, { recursive: true });
await Deno.writeTextFile(new URL("RESULTS.md", OUT), md.join("\n"));
// aligned tables and wrapped prose, as `deno fmt` leaves them (the project's only fmt setting is the width)
const fmt = ["fmt", "--quiet", "--no-config", "--line-width", "120", new URL("RESULTS.md", OUT).pathname];
if (!(await new Deno.Command(Deno.execPath(), { args: fmt }).output()).success) note("deno fmt failed on RESULTS.md");
await Deno.writeTextFile(new URL("attention_scaling.svg", OUT), svg(slopes.filter((s) => s.D === 8 || s.D === 64)));
console.log(`wrote ${new URL("RESULTS.md", OUT).pathname} and attention_scaling.svg`);
