/**
 * @file The WebAssembly row kernels (rows_module.ts, through elementwise.ts) against the JS loops of
 * the same kernels: `layerNorm`, `heads` and `addMul` give the same bits either way, on shapes whose
 * rows cross the host's chunks and modulation groups. Both orders of float64 summation are the one
 * `sum8` defines; inputs far from zero (a large common offset) make a different order show in the
 * float32 results. The float64 references of the kernels themselves are in ../kernels_test.ts.
 */
import assert from "node:assert/strict";
import { addMul, heads, layerNorm } from "../kernels.ts";
import { sum8 } from "../loops.ts";
import { randomF32 } from "../../random.ts";
import { elementwiseBackend, setElementwiseBackend } from "./elementwise.ts";
import { ROWS_CHUNK } from "./rows_module.ts";

/** fn's output with the JS loops and with WebAssembly (copies: pooled outputs are reused). */
function bothWays(fn: () => Float32Array): { js: Float32Array; wasm: Float32Array } {
  setElementwiseBackend("js");
  try {
    const js = fn().slice();
    setElementwiseBackend("auto");
    assert.equal(elementwiseBackend(), "wasm", "WebAssembly SIMD is available here");
    return { js, wasm: fn().slice() };
  } finally {
    setElementwiseBackend("auto");
  }
}

function assertSameBits(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== w[i]) assert.fail(`${what}: element ${i} is ${got[i]} in WebAssembly, ${want[i]} in JS`);
  }
}

/** Values around `offset` (noise of scale 1): sums and their order matter in the last bits. */
const offsetF32 = (n: number, seed: number, offset: number) => randomF32(n, seed).map((v) => v + offset);

Deno.test("sum8: eight partial sums by index mod 8, combined ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))", () => {
  for (const n of [0, 1, 7, 8, 9, 16, 21]) {
    const x = offsetF32(n + 3, n, 1e3), from = 3, s = new Float64Array(8), q = new Float64Array(8), c = 1e3;
    for (let i = 0; i < n; i++) s[i % 8]! += x[from + i]!, q[i % 8]! += (x[from + i]! - c) * (x[from + i]! - c);
    const combine = (t: Float64Array) => ((t[0]! + t[4]!) + (t[2]! + t[6]!)) + ((t[1]! + t[5]!) + (t[3]! + t[7]!));
    assert.equal(sum8(x, from, from + n), combine(s), `Σx, n = ${n}`);
    assert.equal(sum8(x, from, from + n, c), combine(q), `Σ(x − c)², n = ${n}`);
  }
});

Deno.test("layerNorm: WebAssembly rows give the bits of the JS loop, plain and modulated, across chunks and groups", () => {
  // C·rows spans several chunks; T = 7 puts modulation-group boundaries inside chunks
  const C = 1000, B = 5, T = 7, per = Math.floor(ROWS_CHUNK / C);
  assert.ok(B * T > 2 * per && per % T !== 0, "the shape crosses chunks and groups");
  const x = offsetF32(B * T * C, 1, 300), s = randomF32(B * C, 2), b = randomF32(B * C, 3);
  // rows where ±2⁴⁰ cancel within one partial sum or across two: the mean then depends on the
  // order of the float64 sums, which a float64 noise of 300 ± 1 alone never shows in float32
  for (let r = 0; r < 8; r++) x[r * C + r] = 2 ** 40, x[r * C + ((r + 2 + r * 5) % 8) + 8] = -(2 ** 40);
  for (const mod of [false, true]) {
    const { js, wasm } = bothWays(() => layerNorm({ x, C, eps: 1e-6, s: mod ? s : null, b: mod ? b : null, T }));
    assertSameBits(wasm, js, `layerNorm (modulated: ${mod})`);
  }
});

Deno.test("heads: WebAssembly rows give the bits of the JS loop, with and without τ, across chunks", () => {
  // H·D = 120 floats per row: 136 rows per chunk, so T = 150 splits every batch in two chunks
  const H = 3, D = 40, T = 150, B = 2, W = 3 * H * D + 8, start = H * D + 4;
  const x = offsetF32(B * T * W, 4, 50), tau = randomF32(H, 5).map((v) => 1 + Math.abs(v));
  for (const t of [tau, null]) {
    const { js, wasm } = bothWays(() => heads({ x, rows: B * T, T, W, start, H, D, eps: 1e-12, tau: t }));
    assertSameBits(wasm, js, `heads (τ: ${t !== null})`);
  }
});

Deno.test("addMul: WebAssembly rows give the bits of the JS loop, with a gate broadcast per batch", () => {
  const B = 3, T = 40, C = 1000;
  const a = randomF32(B * T * C, 6), g = randomF32(B * C, 7), c = randomF32(B * T * C, 8);
  const { js, wasm } = bothWays(() =>
    addMul({
      a,
      b: g,
      c,
      shape: [B, T, C],
      aStrides: [T * C, C, 1],
      bStrides: [C, 0, 1],
      cStrides: [T * C, C, 1],
    })
  );
  assertSameBits(wasm, js, "addMul");
});
