/**
 * @file Worker threads for the WebAssembly kernels: each module (GEMM and convolutions, low-rank
 * attention) runs its jobs on workers that instantiate the same bytes on the shared memory and call
 * its `run(thread)` whenever the job counter in its control block changes.
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
