/**
 * @file What the WebAssembly kernel runtimes (GEMM and convolutions, low-rank attention) share: worker
 * threads that instantiate the same bytes on the shared memory and call its `run(thread)` whenever the
 * job counter in its control block changes, the protocol of one job, and memory growth.
 */

// deno-lint-ignore no-explicit-any
type Any = any;

/** `node:worker_threads` when the host has it (Deno, Node), else null. */
export function workerThreads(): Any {
  try {
    return (globalThis as Any).process?.getBuiltinModule?.("node:worker_threads") ?? null;
  } catch {
    return null;
  }
}

/** Polls of a shared counter before sleeping on it (about 0.1–0.2 ms). */
export const SPIN = 20000;

/**
 * Worker source: instantiate the module on the shared memory, then run a job each time the counter
 * at i32 slot `seq` changes (worker i is thread i + 1; the caller is thread 0). Jobs come in bursts,
 * so it spins briefly before sleeping: a futex wake can take longer than a small job.
 */
function workerSource(seq: number): string {
  return `
const { workerData } = process.getBuiltinModule("node:worker_threads");
const { bytes, memory, thread } = workerData;
const { run } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: memory } }).exports;
const ctl = new Int32Array(memory.buffer, 0, ${seq + 1});
let seen = 0;
for (;;) {
  for (let i = 0; i < ${SPIN} && Atomics.load(ctl, ${seq}) === seen; i++);
  Atomics.wait(ctl, ${seq}, seen);
  seen = Atomics.load(ctl, ${seq});
  run(thread);
}
`;
}

/**
 * Starts workers (unref'd: they never keep a process alive) until `workers` holds want − 1 of them
 * or one fails to start; returns the threads available (the caller included).
 */
export function startWorkers(
  workers: { unref?(): void }[],
  want: number,
  module: { bytes: Uint8Array; memory: WebAssembly.Memory; seq: number },
): number {
  while (workers.length < want - 1) {
    try {
      const worker = new (workerThreads().Worker)(workerSource(module.seq), {
        eval: true,
        workerData: { bytes: module.bytes, memory: module.memory, thread: workers.length + 1 },
      });
      worker.unref?.();
      workers.push(worker);
    } catch {
      break;
    }
  }
  return Math.min(want, workers.length + 1);
}

/** Control-block slots (i32 indices) of the job protocol; both modules lay them out alike. */
export interface JobSlots {
  /** Bumped once per job: the workers' wake-up counter. */
  readonly SEQ: number;
  /** (job & 0x7fff) << 16 | the next unclaimed chunk. */
  readonly CLAIM: number;
  /** Chunks finished. */
  readonly DONE: number;
  /** Chunks in the job. */
  readonly TOTAL: number;
}

/** Chunks of one job are counted in the low 16 bits of the claim word: fewer than this. */
export const MAX_CHUNKS = 0xffff;

/**
 * Runs one job of `total` (< MAX_CHUNKS) chunks, its fields already in the control block: publishes it
 * as job number `job`, wakes the workers, works on it here (`runHere`), waits until every chunk is done
 * (polling briefly before sleeping), then closes it so that a late worker cannot claim a chunk once the
 * next job's fields are written.
 */
export function runJob(ctl: Int32Array, s: JobSlots, job: number, total: number, runHere: () => void): void {
  ctl[s.TOTAL] = total;
  Atomics.store(ctl, s.DONE, 0);
  Atomics.store(ctl, s.CLAIM, job << 16);
  Atomics.add(ctl, s.SEQ, 1);
  Atomics.notify(ctl, s.SEQ);
  runHere();
  for (let i = 0; i < SPIN && Atomics.load(ctl, s.DONE) < total; i++);
  for (let done = Atomics.load(ctl, s.DONE); done < total; done = Atomics.load(ctl, s.DONE)) {
    Atomics.wait(ctl, s.DONE, done);
  }
  Atomics.store(ctl, s.CLAIM, (job << 16) | MAX_CHUNKS);
}

/** The next job number (15 bits, as the claim word holds it). */
export const nextJob = (job: number): number => (job + 1) & 0x7fff;

/** Grows `memory` to at least `bytes` (pages of 64 KiB, at most `maxPages`); false when it cannot. */
export function growMemory(memory: WebAssembly.Memory, bytes: number, maxPages: number): boolean {
  const have = memory.buffer.byteLength;
  if (bytes <= have) return true;
  const pages = Math.ceil((bytes - have) / 65536);
  if (have / 65536 + pages > maxPages) return false;
  try {
    memory.grow(pages);
    return true;
  } catch {
    return false;
  }
}
