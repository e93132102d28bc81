/**
 * @file `deno task bench:ceiling`: the WebAssembly SIMD128 multiply-add ceiling of this machine, on
 * one thread and on all cores. `bench/cpu.ts` uses it as the 100% of its GEMM columns.
 *
 * A module built with runtime/js/wasm/encode.ts holds one function per chain count C: C independent
 * f32x4 accumulators, each updated acc = acc·x + y (f32x4.relaxed_madd, or f32x4.mul + f32x4.add
 * where relaxed SIMD does not validate), in a loop unrolled to about 96 updates per iteration, with
 * no memory traffic. Each update is 8 flops (4 lanes × multiply and add). Every thread runs in its
 * own worker (node:worker_threads, as the GEMM pool does): after warm-up (so that the optimising
 * tier has replaced the baseline code), the workers meet at a barrier on a shared counter and run
 * together; the all-core rate is the flops of all workers over the slowest worker's time. The
 * ceiling is the best rate over the chain counts and repetitions.
 *
 * Standalone: `deno task bench:ceiling [--quick] [--reps N] [--threads N] [--both]` prints a table
 * per chain count (`--both` also times mul + add where relaxed SIMD is available), then the GEMM
 * kernel's rate on cache-resident operands (`measureKernel`).
 */
import { Worker } from "node:worker_threads";
import { parseArgs } from "node:util";
import { encodeModule, Fn, I32, V128 } from "../runtime/js/wasm/encode.ts";
import { privateModule } from "../runtime/js/wasm/gemm.ts";

/** Independent accumulator chains tried; x86 has 16 xmm registers for them, x and y. */
export const CHAINS = [4, 6, 8, 10, 12] as const;
/** Accumulator updates per loop iteration (rounded up to whole sweeps over the chains). */
const UNROLL_UPDATES = 96;

export type Flavour = "relaxed_madd" | "mul+add";

/** The rate of one configuration: the best over repetitions, and all of them. */
export interface CeilingPoint {
  readonly flavour: Flavour;
  readonly chains: number;
  readonly threads: number;
  readonly gflops: number;
  readonly reps: number[];
}

export interface Ceiling {
  /** The instruction form measured (relaxed_madd where relaxed SIMD validates). */
  readonly flavour: Flavour;
  readonly relaxedAvailable: boolean;
  readonly threads: number;
  /** Best over chain counts, one worker. */
  readonly oneThread: CeilingPoint;
  /** Best over chain counts, `threads` workers at once. */
  readonly allCores: CeilingPoint;
  readonly points: CeilingPoint[];
}

const fnName = (flavour: Flavour, chains: number) => `${flavour === "relaxed_madd" ? "madd" : "muladd"}_${chains}`;
const sweeps = (chains: number) => Math.ceil(UNROLL_UPDATES / chains);
/** Flops of one call with `iters` loop iterations. */
const flopsOf = (chains: number, iters: number) => iters * sweeps(chains) * chains * 8;

/** f(iters): the chains, x and y splatted from memory bytes 0 and 4, results stored from byte 64. */
function chainFn(flavour: Flavour, chains: number): Fn {
  const f = new Fn(fnName(flavour, chains), 1);
  const i = f.local(I32), x = f.local(V128), y = f.local(V128);
  const acc = Array.from({ length: chains }, () => f.local(V128));
  f.i32_const(0).f32_load(0).f32x4_splat().local_set(x);
  f.i32_const(0).f32_load(4).f32x4_splat().local_set(y);
  acc.forEach((a, c) => f.f32x4_const(0.1 * (c + 1)).local_set(a));
  f.for(i, () => f.i32_const(0), () => f.local_get(0), 1, () => {
    for (let s = 0; s < sweeps(chains); s++) {
      for (const a of acc) {
        // acc·x + y
        if (flavour === "relaxed_madd") f.local_get(a).local_get(x).local_get(y).f32x4_relaxed_madd();
        else f.local_get(a).local_get(x).f32x4_mul().local_get(y).f32x4_add();
        f.local_set(a);
      }
    }
  });
  acc.forEach((a, c) => f.i32_const(0).local_get(a).v128_store(64 + 16 * c));
  return f;
}

/** Whether f32x4.relaxed_madd validates here. */
export function relaxedSimd(): boolean {
  return WebAssembly.validate(encodeModule([chainFn("relaxed_madd", 1)], { initial: 1, maximum: 1, shared: false }));
}

/** The module: one function per flavour and chain count. */
export function ceilingModule(flavours: readonly Flavour[]): Uint8Array<ArrayBuffer> {
  return encodeModule(flavours.flatMap((fl) => CHAINS.map((c) => chainFn(fl, c))), {
    initial: 1,
    maximum: 1,
    shared: false,
  });
}

/**
 * Worker: its own instance and memory (`pages` pages; beyond the first 256 bytes filled with values
 * in [−0.5, 0.5) for a kernel's operands). A job {fn, iters, threads} runs after all `threads`
 * workers of the job have incremented the barrier: `fn(iters)`, or with `args` (a kernel call)
 * `fn(...args)` iters times; it answers the elapsed milliseconds. {warm} calls it with small counts
 * for that many milliseconds (tier-up).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = process.getBuiltinModule("node:worker_threads");
const { bytes, barrier, pages, args } = workerData;
const mem = new WebAssembly.Memory({ initial: pages, maximum: pages });
const f32 = new Float32Array(mem.buffer);
f32[0] = 0.9990234375, f32[1] = 0.0009765625; // acc -> 1: no overflow, no subnormals
for (let i = 64; i < f32.length; i++) f32[i] = ((i * 40503) % 1024) / 1024 - 0.5;
const ex = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem } }).exports;
const call = args ? (fn, iters) => { for (let i = 0; i < iters; i++) ex[fn](...args); } : (fn, iters) => ex[fn](iters);
const ctl = new Int32Array(barrier);
parentPort.on("message", ({ fn, iters, threads, warm }) => {
  if (warm) {
    const end = performance.now() + warm;
    while (performance.now() < end) call(fn, iters);
    return parentPort.postMessage(0);
  }
  Atomics.add(ctl, 0, 1);
  while (Atomics.load(ctl, 0) < threads);
  const t = performance.now();
  call(fn, iters);
  parentPort.postMessage(performance.now() - t);
});
`;

interface Pool {
  readonly workers: Worker[];
  readonly ctl: Int32Array;
}

function startPool(bytes: Uint8Array, threads: number, pages = 1, args?: number[]): Pool {
  const barrier = new SharedArrayBuffer(4);
  const workers = Array.from(
    { length: threads },
    () => new Worker(WORKER_SOURCE, { eval: true, workerData: { bytes, barrier, pages, args } }),
  );
  return { workers, ctl: new Int32Array(barrier) };
}

const reply = (w: Worker) => new Promise<number>((resolve) => w.once("message", resolve));

/** Runs `fn` on the first `threads` workers at once; their elapsed milliseconds. */
async function together(pool: Pool, fn: string, iters: number, threads: number): Promise<number[]> {
  Atomics.store(pool.ctl, 0, 0);
  const ws = pool.workers.slice(0, threads);
  const done = ws.map(reply);
  for (const w of ws) w.postMessage({ fn, iters, threads });
  return await Promise.all(done);
}

async function warm(pool: Pool, fn: string, ms: number, iters = 2000): Promise<void> {
  const done = pool.workers.map(reply);
  for (const w of pool.workers) w.postMessage({ fn, iters, warm: ms });
  await Promise.all(done);
}

/**
 * GFLOP/s of `fn` over `reps` repetitions, interleaved: on one worker alone (`one`) and on `threads`
 * workers at once (`all`: their flops over the slowest worker's time; empty on one thread). Each run
 * takes about runMs on one thread, sized from a first run of `probe` iterations; `flops(iters)` is
 * one worker's work in a run.
 */
async function rates(
  pool: Pool,
  fn: string,
  probe: number,
  flops: (iters: number) => number,
  { threads, reps, runMs }: { threads: number; reps: number; runMs: number },
): Promise<{ one: number[]; all: number[] }> {
  const [ms] = await together(pool, fn, probe, 1);
  const iters = Math.max(probe, Math.round((probe * runMs) / Math.max(ms!, 1e-3)));
  const one: number[] = [], all: number[] = [];
  for (let r = 0; r < reps; r++) {
    const [t1] = await together(pool, fn, iters, 1);
    one.push(flops(iters) / t1! / 1e6);
    if (threads > 1) {
      const ts = await together(pool, fn, iters, threads);
      all.push((threads * flops(iters)) / Math.max(...ts) / 1e6);
    }
  }
  return { one, all };
}

/**
 * Measures the ceiling: every chain count on 1 worker and on `threads` workers, `reps` times each
 * (interleaved), each run about `runMs` long. `flavours` defaults to the form the GEMM uses.
 */
export async function measureCeiling(
  options: { threads?: number; reps?: number; runMs?: number; flavours?: Flavour[]; log?: boolean } = {},
): Promise<Ceiling> {
  const relaxedAvailable = relaxedSimd();
  const flavours = options.flavours?.filter((f) => f !== "relaxed_madd" || relaxedAvailable) ??
    [relaxedAvailable ? "relaxed_madd" : "mul+add"];
  const threads = Math.max(1, options.threads ?? navigator.hardwareConcurrency ?? 1);
  const reps = options.reps ?? 5, runMs = options.runMs ?? 200;
  const pool = startPool(ceilingModule(flavours), threads);
  const points: CeilingPoint[] = [];
  try {
    for (const flavour of flavours) {
      for (const chains of CHAINS) {
        const fn = fnName(flavour, chains);
        await warm(pool, fn, Math.max(50, runMs / 2));
        const { one, all } = await rates(pool, fn, 20_000, (iters) => flopsOf(chains, iters), { threads, reps, runMs });
        points.push({ flavour, chains, threads: 1, gflops: Math.max(...one), reps: one });
        if (threads > 1) points.push({ flavour, chains, threads, gflops: Math.max(...all), reps: all });
        if (options.log) {
          console.error(
            `simd ceiling ${flavour}, ${chains} chains: 1T ${Math.max(...one).toFixed(1)}` +
              (threads > 1 ? `, ${threads}T ${Math.max(...all).toFixed(1)}` : "") + " GFLOP/s",
          );
        }
      }
    }
  } finally {
    await Promise.all(pool.workers.map((w) => w.terminate()));
  }
  const flavour = flavours[0]!;
  const best = (t: number) =>
    points.filter((p) => p.flavour === flavour && p.threads === t).reduce((a, b) => (b.gflops > a.gflops ? b : a));
  return { flavour, relaxedAvailable, threads, oneThread: best(1), allCores: best(threads), points };
}

/** The GEMM micro-kernel's rate on cache-resident operands, on 1 thread and on all at once. */
export interface KernelRate {
  /** Rows of a × columns of out × K of each call. */
  readonly shape: readonly [number, number, number];
  readonly threads: number;
  /** Median GFLOP/s over repetitions: one worker alone, and all together (their flops over the slowest). */
  readonly oneThread: number;
  readonly allCores: number;
}

/** The broadcast NT kernel's call measured by `measureKernel`: a in 8 panels (64 KiB) and 8 tiles of w. */
const KERNEL_SHAPE = [64, 48, 256] as const;

/**
 * The broadcast NT GEMM kernel (the one the GEMM rows time) on operands that stay in L1/L2, so that
 * only the core's issue and execution rate count: each worker calls it on its own memory, as
 * `measureCeiling` runs the chains. Next to the ceiling it shows how much of the core the machine
 * gives the kernel at that moment: where the core's issue slots are shared (another tenant on its
 * sibling hardware thread), a kernel that issues about three instructions per multiply-add slows
 * down, while the chains (one per multiply-add) do not.
 */
export async function measureKernel(
  options: { threads?: number; reps?: number; runMs?: number } = {},
): Promise<KernelRate> {
  const threads = Math.max(1, options.threads ?? navigator.hardwareConcurrency ?? 1);
  const reps = options.reps ?? 5, runMs = options.runMs ?? 100;
  const [Mp, N, K] = KERNEL_SHAPE, pages = 4;
  // w [N, K] at 256, a's panels after it, out after them (no partial sums: K ≤ KC)
  const w = 256, a = w + N * K * 4, out = a + Mp * K * 4;
  const args = [w, a, 0, out, 0, Mp, N, K, 0, 0, Mp, 0, N];
  const pool = startPool(privateModule(relaxedSimd(), pages), threads, pages, args);
  const flops = 2 * Mp * N * K;
  try {
    await warm(pool, "nt", Math.max(50, runMs / 2), 20);
    const { one, all } = await rates(pool, "nt", 200, (iters) => flops * iters, { threads, reps, runMs });
    const med = (xs: number[]) => [...xs].sort((p, q) => p - q)[xs.length >> 1]!;
    return { shape: KERNEL_SHAPE, threads, oneThread: med(one), allCores: threads > 1 ? med(all) : med(one) };
  } finally {
    await Promise.all(pool.workers.map((w) => w.terminate()));
  }
}

/** One line: flavour, best rates, chain counts. */
export function describeCeiling(c: Ceiling): string {
  const form = c.flavour === "relaxed_madd"
    ? "f32x4.relaxed_madd"
    : `f32x4.mul + f32x4.add${c.relaxedAvailable ? "" : " (relaxed SIMD not available)"}`;
  return `WASM SIMD128 ceiling (${form}, independent chains, 4 lanes × 2 flop): ` +
    `1 thread ${c.oneThread.gflops.toFixed(1)} GFLOP/s (${c.oneThread.chains} chains), ` +
    `${c.threads} threads ${c.allCores.gflops.toFixed(1)} GFLOP/s (${c.allCores.chains} chains)`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean" },
      both: { type: "boolean" },
      reps: { type: "string" },
      threads: { type: "string" },
    },
  });
  const c = await measureCeiling({
    threads: values.threads ? Number(values.threads) : undefined,
    reps: values.reps ? Number(values.reps) : values.quick ? 3 : 5,
    runMs: values.quick ? 60 : 200,
    flavours: values.both ? ["relaxed_madd", "mul+add"] : undefined,
  });
  const load = (() => {
    try {
      return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
    } catch {
      return "n/a";
    }
  })();
  console.log(`${navigator.hardwareConcurrency} logical cores, Deno ${Deno.version.deno}, load average ${load}`);
  console.log("| form | chains | threads | best GFLOP/s | repetitions |");
  console.log("|---|---|---|---|---|");
  for (const p of c.points) {
    const reps = p.reps.map((x) => x.toFixed(1)).join(", ");
    console.log(`| ${p.flavour} | ${p.chains} | ${p.threads} | ${p.gflops.toFixed(1)} | ${reps} |`);
  }
  console.log(describeCeiling(c));
  if (c.threads > 1) {
    console.log(
      `all cores / 1 thread: ${(c.allCores.gflops / c.oneThread.gflops).toFixed(2)}× on ${c.threads} threads`,
    );
  }
  const k = await measureKernel({ threads: c.threads, reps: values.quick ? 3 : 5 });
  console.log(
    `GEMM kernel on cache-resident operands (${k.shape.join(" × ")} calls): ` +
      `1 thread ${k.oneThread.toFixed(1)} GFLOP/s (${(100 * k.oneThread / c.oneThread.gflops).toFixed(0)}% of the ` +
      `ceiling), ${k.threads} threads ${k.allCores.toFixed(1)} (${(100 * k.allCores / c.allCores.gflops).toFixed(0)}%)`,
  );
}
