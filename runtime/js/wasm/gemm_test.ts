/**
 * @file The WebAssembly SIMD GEMM against a float64 reference (odd and even shapes, with and without
 * bias, one and two threads), and the forced JS fallback.
 *
 * Tolerance per output: the dot-product tiles sum at most K/4 + 4 terms per lane plus the lane
 * reduction, K blocks and the bias; the broadcast tiles sum the bias and then all K products in one
 * lane (partial sums between K blocks are stored exactly). Either way |got − exact| ≤
 * γ·(Σ_k |a||w| + |b|) with γ = (K + 8)·u and u = 2⁻²⁴ (a loose form of the standard γ_n bound),
 * plus u·|exact| for the final rounding of the float64 reference. The fused WASM attention has its own tests
 * (`attention_test.ts`).
 */
import assert from "node:assert/strict";
import { gemmBackend, gemmNT, gemmNTJs, gemmThreads, setGemmBackend, setGemmThreads, unary } from "../kernels.ts";
import { ATTENTION, gemmNTWasm, NT_MIN_ROWS, residentAt, residentCopy, wasmRuntime } from "./gemm.ts";
import { gemmModule } from "./gemm_module.ts";
import { randomF32 } from "../../random.ts";

const U = 2 ** -24;
const TILES = { rm: 3, rn: 3, kc: 512, mc: 64, attention: ATTENTION };

/** Checks out against the float64 product within the derived bound; returns max |error| / bound. */
function check(
  what: string,
  a: Float32Array,
  M: number,
  K: number,
  w: Float32Array,
  N: number,
  bias: Float32Array | null,
  out: Float32Array,
): number {
  let worst = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n]! : 0, mag = bias ? Math.abs(bias[n]!) : 0;
      for (let k = 0; k < K; k++) {
        const p = a[m * K + k]! * w[n * K + k]!;
        s += p, mag += Math.abs(p);
      }
      const bound = (K + 8) * U * mag + U * Math.abs(s) + 1e-30;
      const err = Math.abs(out[m * N + n]! - s);
      if (!(err <= bound)) assert.fail(`${what}: out[${m}, ${n}] = ${out[m * N + n]} vs ${s}, error ${err} > ${bound}`);
      worst = Math.max(worst, err / bound);
    }
  }
  return worst;
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 3],
  [3, 5, 7],
  [5, 3, 1],
  [4, 4, 4],
  [17, 13, 33],
  [21, 50, 260],
  [64, 70, 129],
  [9, 1030, 514],
  [130, 257, 515],
  [256, 96, 1024],
  [24, 20, 2100], // broadcast kernel, three K blocks (partial sums), a short last one
  // broadcast kernel, three K blocks: on one thread three blocks of MC rows of a (a short last one), on
  // several, chunks of fewer rows
  [300, 50, 2100],
];

Deno.test("WebAssembly SIMD is available here and selected by default", () => {
  assert.ok(
    WebAssembly.validate(
      gemmModule({ ...TILES, relaxed: false, shared: false, initialPages: 1, maximumPages: 16 }),
    ),
  );
  assert.equal(gemmBackend(), "wasm");
});

Deno.test("WASM GEMM matches a float64 reference on odd and even shapes, with and without bias", () => {
  let seed = 10;
  for (const [M, N, K] of SHAPES) {
    const a = randomF32(M * K, seed++), w = randomF32(N * K, seed++), b = randomF32(N, seed++);
    for (const bias of [null, b]) {
      const out = new Float32Array(M * N).fill(NaN);
      assert.ok(gemmNTWasm(a, M, K, w, N, bias, out), `WASM path taken for ${M}×${N}×${K}`);
      check(`${M}×${N}×${K}${bias ? " + bias" : ""}`, a, M, K, w, N, bias, out);
    }
  }
});

Deno.test("WASM GEMM gives the same bits on one thread and on several", () => {
  // both kernels (dot-product tiles below NT_MIN_ROWS rows of a, broadcast from there), and every
  // way of splitting a job (NQ rows of w × blocks of rows of a, with short last chunks both ways)
  const cases: [number, number, number, string][] = [
    [40, 500, 64, "broadcast, split by NQ rows of w and 2 blocks of rows of a, one K block"],
    [64, 400, 8200, "broadcast, split by NQ rows of w and rows of a, 9 K blocks (partial sums)"],
    [200, 301, 257, "broadcast, split by NQ rows of w and 3 blocks of rows of a"],
    [200, 30, 520, "broadcast, split by rows of a only"],
    [300, 800, 1100, "broadcast, split by NQ rows of w only: 304 rows of a in blocks of MC, 2 K blocks"],
    [NT_MIN_ROWS - 1, 301, 257, "dot-product tiles, split by columns"],
  ];
  try {
    for (const [M, N, K, what] of cases) {
      const a = randomF32(M * K, M), w = randomF32(N * K, N), b = randomF32(N, K);
      const one = new Float32Array(M * N), two = new Float32Array(M * N);
      setGemmThreads(1);
      assert.equal(gemmThreads(), 1);
      gemmNT(a, M, K, w, N, b, one);
      setGemmThreads(2);
      const threads = gemmThreads();
      assert.equal(threads, Math.min(2, navigator.hardwareConcurrency), "worker threads start");
      gemmNT(a, M, K, w, N, b, two);
      assert.deepEqual(two, one, `${what}: ${threads} threads`);
      check(what, a, M, K, w, N, b, two);
    }
  } finally {
    setGemmThreads(undefined);
  }
});

Deno.test("a fused activation gives the bits of the GEMM followed by unary, on both kernels and threads", () => {
  // M = 40: the broadcast kernel's epilogue (one and two K blocks); M = 5: dot-product tiles, then unary
  for (const [M, N, K] of [[40, 37, 200], [40, 301, 520], [5, 301, 257]] as const) {
    const a = randomF32(M * K, M + K), w = randomF32(N * K, N), b = randomF32(N, K);
    for (let i = 0; i < a.length; i += 7) a[i] = a[i]! * 40; // outputs far into both tails of the activations
    const plain = new Float32Array(M * N);
    gemmNT(a, M, K, w, N, b, plain);
    for (const act of ["silu", "gelu_tanh"] as const) {
      const fused = new Float32Array(M * N);
      gemmNT(a, M, K, w, N, b, fused, act);
      assert.deepEqual(fused, unary({ x: plain, fn: act }), `${M}×${N}×${K} ${act}`);
    }
  }
});

Deno.test("forcing the JS fallback", () => {
  const M = 33, N = 65, K = 130;
  const a = randomF32(M * K, 4), w = randomF32(N * K, 5), b = randomF32(N, 6);
  const viaSwitch = new Float32Array(M * N), direct = new Float32Array(M * N);
  try {
    setGemmBackend("js");
    assert.equal(gemmBackend(), "js");
    assert.equal(gemmNTWasm(a, M, K, w, N, b, viaSwitch), false);
    gemmNT(a, M, K, w, N, b, viaSwitch);
  } finally {
    setGemmBackend("auto");
  }
  gemmNTJs(a, M, K, w, N, b, direct);
  assert.deepEqual(viaSwitch, direct);
  check("js", a, M, K, w, N, b, direct);
});

Deno.test("WASM GEMM reads resident weights in place: same bits as a copied operand", () => {
  const M = 37, N = 70, K = 256;
  const a = randomF32(M * K, 7), plain = randomF32(N * K, 8), b = randomF32(N, 9);
  const w = residentCopy(plain)!;
  assert.ok(residentAt(wasmRuntime()!, w) >= 0, "the copy is resident");
  const viaCopy = new Float32Array(M * N), inPlace = new Float32Array(M * N);
  assert.ok(gemmNTWasm(a, M, K, plain, N, b, viaCopy));
  assert.ok(gemmNTWasm(a, M, K, w, N, b, inPlace));
  assert.deepEqual(inPlace, viaCopy);
  check("resident", a, M, K, w, N, b, inPlace);
});
