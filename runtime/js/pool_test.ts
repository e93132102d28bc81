import assert from "node:assert/strict";
import { randomF32 } from "../../tests/_rng.ts";
import { hostDevice } from "../device.ts";
import {
  binary,
  concat,
  conv2d,
  gather,
  groupNorm,
  interpolate,
  l2Normalize,
  layerNorm,
  linear,
  permute,
  scalar,
  slice,
  unary,
  upsampleNearest,
} from "./kernels.ts";
import { allocF32, drainPool, POOL_MIN_FLOATS, release, setPoolLimit } from "./pool.ts";

// One pooled length: every output below has exactly N floats, so each kernel can be handed a
// released array of its output's size.
const N = POOL_MIN_FLOATS, R = 256, C = N / R;

/** Puts `count` arrays of n floats full of NaN into the pool, as stale outputs of earlier kernels. */
function poison(n: number, count = 4): void {
  const xs = Array.from({ length: count }, () => allocF32(n).fill(NaN));
  for (const x of xs) release(x);
}

Deno.test("pool: kernels that take unzeroed arrays write every element (same bits as on fresh memory)", () => {
  const x = randomF32(N, 1),
    y = randomF32(N, 2),
    wide = randomF32(N / 8, 10),
    z = randomF32(2 * N, 8),
    row = randomF32(C, 3),
    w = randomF32(C * C, 4);
  const table = randomF32(R * C, 5), idx = Int32Array.from({ length: R }, (_, i) => (i * 7) % R);
  const kernels: Record<string, () => Float32Array> = {
    gather: () => gather({ table, N: R, C, idx, what: "test" }),
    linear: () => linear({ x, M: R, K: C, w, N: C, b: row, act: "none" }),
    layerNorm: () => layerNorm({ x, C, eps: 1e-6, s: null, b: null, T: 1 }),
    l2Normalize: () => l2Normalize({ x, D: C, eps: 1e-12 }),
    unary: () => unary({ x, fn: "silu" }),
    scalar: () => scalar({ x, fn: "mul", value: 3 }),
    binary: () => binary({ a: x, b: row, fn: "add", shape: [R, C], aStrides: [C, 1], bStrides: [0, 1] }),
    concat: () =>
      concat({ xs: [x.subarray(0, N / 4), y.subarray(0, (3 * N) / 4)], outer: 2, sizes: [32, 96], inner: C }),
    permute: () => permute({ x, shape: [4, 64, C], perm: [1, 0, 2] }) as Float32Array,
    conv2d: () =>
      conv2d({ x: z, B: 1, Ci: 8, H: 128, W: 128, w: randomF32(4 * 8 * 9, 9), Co: 4, kh: 3, kw: 3, b: row, pad: 1 }),
    conv2dIm2col: () =>
      conv2d({ x: z, B: 2, Ci: 7, H: 66, W: 130, w: randomF32(4 * 7 * 9, 9), Co: 4, kh: 3, kw: 3, b: row, pad: 0 }),
    groupNorm: () => groupNorm({ x, w: row, b: row, B: 1, C: 16, S: N / 16, groups: 4, eps: 1e-5, silu: true }),
    // S not a multiple of 16: the JS loops
    groupNormJs: () => groupNorm({ x, w: wide, b: wide, B: 1, C: N / 8, S: 8, groups: 4, eps: 1e-5, silu: false }),
    interpolate: () => interpolate({ x, BC: 16, h: 16, w: 16, size: 64, mode: "bicubic" }),
    upsampleNearest: () => upsampleNearest({ x, BC: 16, h: 32, w: 32, factor: 2 }),
    slice: () => slice({ x: z, outer: 2, size: R, inner: C, start: 64, end: 192 }) as Float32Array,
  };
  for (const [name, run] of Object.entries(kernels)) {
    drainPool();
    const fresh = run();
    assert.equal(fresh.length, N, `${name}: the test wants an output of ${N} floats`);
    poison(N);
    const reused = run();
    assert.notEqual(reused, fresh);
    assert.deepEqual(new Uint32Array(reused.buffer), new Uint32Array(fresh.buffer), `${name}: stale values survived`);
  }
  drainPool();
});

Deno.test("pool: allocF32 zeroes a reused array unless told not to", () => {
  drainPool();
  poison(N, 1);
  assert.ok(allocF32(N).every((v) => v === 0));
  poison(N, 1);
  assert.ok(allocF32(N, { zeroed: false }).every(Number.isNaN));
  drainPool();
});

Deno.test("host device: a released kernel output is reused; an array handed out by read is not", async () => {
  drainPool();
  const out = unary({ x: randomF32(N, 6), fn: "exp" });
  await hostDevice.release({ data: out, shape: [N] });
  assert.equal(allocF32(N), out, "a released output is the next allocation of its length");
  const kept = unary({ x: randomF32(N, 7), fn: "exp" }), copy = kept.slice();
  const t = { data: kept, shape: [N] };
  assert.equal((await hostDevice.read(t)).data, kept);
  await hostDevice.release(t);
  const next = allocF32(N);
  assert.notEqual(next, kept);
  next.fill(1);
  assert.deepEqual(kept, copy, "the array the caller read stays intact");
  drainPool();
});

Deno.test("pool: beyond its limit the longest-kept arrays are dropped, so the latest released stay reusable", () => {
  drainPool();
  setPoolLimit(3 * N * 4); // three arrays of N floats
  try {
    const old = [allocF32(N), allocF32(N)], other = allocF32(2 * N);
    for (const x of old) release(x);
    release(other); // 4 arrays' worth: the first released goes
    const again = [allocF32(N), allocF32(N)];
    assert.ok(again.includes(old[1]!) && !again.includes(old[0]!), "the oldest N-float array was dropped");
    assert.equal(allocF32(2 * N), other, "the latest released array is kept");
  } finally {
    setPoolLimit(undefined);
    drainPool();
  }
});
