/**
 * @file Reuse of large kernel outputs on the JS target. Generated code releases a value after its
 * last use (`release`), and so does the host device for values kept between entries (the KV
 * caches of the last scale, consumed logits); the next output of the same length takes that array
 * instead of fresh memory, which the VM must map and fault in page by page: a fresh 42 MB array
 * costs several times a reused one. A reused array is zeroed unless its kernel writes every
 * element. Only arrays this pool allocated are taken back, each once; tapped values and arrays
 * handed to the caller are pinned. Shared by every bundled model through a global symbol.
 */

/** Arrays below this many floats are left to the allocator (cheap, and many). */
export const POOL_MIN_FLOATS = 1 << 16;
/**
 * Bytes of released arrays kept at most: a quarter of the machine's memory where the host reports
 * it (Deno), at least 1 GiB. Beyond it the longest-kept ones go to the collector, so that a new
 * phase (the decoder after the transformer's caches) finds room for its own arrays. The bound is
 * sized for a whole image's arrays: every image of a batch allocates the same lengths again (the
 * KV caches alone are 1.8 GB at batch 4 for d16), and with a smaller pool the oldest arrays, which
 * the next image asks for first, are always the ones just dropped, so every array is mapped afresh.
 */
export const POOL_LIMIT_BYTES: number = Math.max(2 ** 30, Math.floor(systemMemoryBytes() / 4));

/** Total memory of the machine, or 0 where the host does not say (or may not be asked without a prompt). */
function systemMemoryBytes(): number {
  type Sys = { name: "sys"; kind: "systemMemoryInfo" };
  const deno = (globalThis as {
    Deno?: {
      systemMemoryInfo?: () => { total: number };
      permissions?: { querySync?: (d: Sys) => { state: string } };
    };
  }).Deno;
  try {
    const granted = deno?.permissions?.querySync?.({ name: "sys", kind: "systemMemoryInfo" }).state === "granted";
    return granted ? deno?.systemMemoryInfo?.().total ?? 0 : 0;
  } catch {
    return 0;
  }
}

interface Pool {
  readonly free: Map<number, Float32Array[]>;
  /** The arrays of `free` in the order they were released (oldest first). */
  readonly order: Set<Float32Array>;
  /** Arrays allocated here and not released since. */
  readonly live: WeakSet<Float32Array>;
  readonly pinned: WeakSet<object>;
  bytes: number;
  /** POOL_LIMIT_BYTES unless set otherwise (`setPoolLimit`). */
  limit: number;
}

const KEY = Symbol.for("varc.js.pool.v2");
const pool = ((globalThis as Record<symbol, unknown>)[KEY] ??= {
  free: new Map(),
  order: new Set(),
  live: new WeakSet(),
  pinned: new WeakSet(),
  bytes: 0,
  limit: POOL_LIMIT_BYTES,
}) as Pool;

/** Sets the bytes the pool keeps at most (undefined: POOL_LIMIT_BYTES), evicting the oldest beyond it. */
export function setPoolLimit(bytes: number | undefined): void {
  pool.limit = bytes ?? POOL_LIMIT_BYTES;
  evict();
}

/**
 * A Float32Array of n elements, reusing a released one when there is one: zeroed, or with
 * `{ zeroed: false }` holding stale values (for kernels that write every element; saves a pass).
 */
export function allocF32(n: number, { zeroed = true }: { zeroed?: boolean } = {}): Float32Array {
  if (n < POOL_MIN_FLOATS) return new Float32Array(n);
  const out = pool.free.get(n)?.pop();
  if (out) {
    pool.order.delete(out), pool.bytes -= out.byteLength;
    if (zeroed) out.fill(0);
  }
  const a = out ?? new Float32Array(n);
  pool.live.add(a);
  return a;
}

/** Gives back a dead value's array (anything else, or an array released before, is ignored). */
export function release(x: unknown): void {
  if (!(x instanceof Float32Array) || !pool.live.has(x) || pool.pinned.has(x)) return;
  pool.live.delete(x);
  const list = pool.free.get(x.length) ?? [];
  list.push(x);
  pool.free.set(x.length, list);
  pool.order.add(x), pool.bytes += x.byteLength;
  evict();
}

/** Drops the longest-kept arrays until the pool is within its limit. */
function evict(): void {
  for (const old of pool.order) {
    if (pool.bytes <= pool.limit) break;
    const same = pool.free.get(old.length)!;
    same.splice(same.indexOf(old), 1);
    pool.order.delete(old), pool.bytes -= old.byteLength;
  }
}

/** Keeps x out of the pool for good (it escapes to the caller, e.g. as a tap). */
export function pin(x: object): void {
  pool.pinned.add(x);
}

/** Empties the pool (its arrays go to the collector). */
export function drainPool(): void {
  pool.free.clear();
  pool.order.clear();
  pool.bytes = 0;
}
