/**
 * @file The WebGPU GEMM (`runtime/webgpu/gemm.ts`), both forms (tiled through workgroup memory, and
 * register-only for CPU adapters), against a float64 reference, on shapes that reach every variant (1,
 * 2, 4 and 8 rows per invocation when tiled, 8 and 16 otherwise; vec4 and scalar K) with partial row,
 * column and K tiles, with and without bias, and the tiled form on more than 65535 workgroups.
 *
 * Tolerance (u = 2^-24): each output is a float32 sum, in k order, of K rounded products (zero-filled
 * tile padding adds exact zeros), then one rounded bias add. With S = Σ_k |a_mk·w_nk| + |b_n|, the products
 * and K − 1 additions are within K·u·S of the exact sum and the bias add within u·S, so
 * |out − exact| ≤ (K + 2)·u·S, the extra u covering second-order terms (γ_n = nu/(1 − nu)).
 * Skipped, saying why, where no WebGPU adapter exists.
 */
import assert from "node:assert/strict";
import { bothForms } from "../../tests/_helpers.ts";
import { randomF32 } from "../../tests/_rng.ts";
import { Gpu, type GpuTensor } from "./device.ts";
import * as G from "./kernels.ts";

const U = 2 ** -24;

let gpu: Gpu | null = null;
try {
  gpu = await Gpu.create();
} catch (e) {
  console.log(`webgpu gemm tests skipped: no WebGPU device (${e instanceof Error ? e.message : e})`);
}
const ignore = gpu === null;

/** Asserts out = a [M, K] · w [N, K]ᵀ (+ b) within (K + 2)·u·S per element (file comment). */
function check(
  what: string,
  out: Float32Array,
  a: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  M: number,
  K: number,
  N: number,
) {
  assert.equal(out.length, M * N, `${what}: length`);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let exact = b ? b[n]! : 0, s = b ? Math.abs(b[n]!) : 0;
      for (let k = 0; k < K; k++) {
        const p = a[m * K + k]! * w[n * K + k]!;
        exact += p;
        s += Math.abs(p);
      }
      const got = out[m * N + n]!, tol = (K + 2) * U * s;
      assert.ok(Math.abs(got - exact) <= tol, `${what}: [${m}, ${n}] = ${got}, exact ${exact}, tolerance ${tol}`);
    }
  }
}

Deno.test({
  name: "gemm, tiled and register forms: every tile variant, edges and bias within (K + 2)·u·Σ|terms| of float64",
  ignore,
  async fn() {
    const g = gpu!;
    const up = (x: Float32Array): GpuTensor => g.upload(x);
    // [M, K, N, bias]: rows per invocation 1 (M ≤ 8), 2 (≤ 16), 4 (≤ 32), 8; K % 4 = 0 (vec4) or not;
    // N and M off the 64-column and BM-row tiles, K off the 16-wide K tile.
    const shapes: [number, number, number, boolean][] = [
      [1, 20, 70, true],
      [2, 7, 5, false],
      [13, 36, 64, true],
      [16, 19, 65, false],
      [17, 12, 33, true],
      [30, 33, 9, true],
      [70, 40, 130, false],
      [65, 17, 3, true],
    ];
    await bothForms(g, async (form) => {
      for (const [i, [M, K, N, bias]] of shapes.entries()) {
        const a = randomF32(M * K, 10 + i), w = randomF32(N * K, 20 + i), b = bias ? randomF32(N, 30 + i) : null;
        const got = await g.read(
          G.linear(g, { x: up(a), M, K, w: up(w), N, b: b && up(b), act: "none" }),
        ) as Float32Array;
        check(`${form} linear M=${M} K=${K} N=${N}${bias ? " +bias" : ""}`, got, a, w, b, M, K, N);
      }
      // gemmNT writes into an existing tensor (a bias of zeros when null).
      const a = randomF32(3 * 8, 1), w = randomF32(5 * 8, 2), out = g.tensor(15);
      G.gemmNT(g, up(a), 3, 8, up(w), 5, null, out);
      check(`${form} gemmNT`, await g.read(out) as Float32Array, a, w, null, 3, 8, 5);
    });
  },
});

Deno.test({
  name: "gemm: more than 65535 row tiles fold into a 2-D grid",
  ignore,
  async fn() {
    const g = gpu!, was = g.tiling;
    g.tiling = true;
    const M = 64 * 65536 + 3, a = new Float32Array(M), w = Float32Array.of(0.5), b = Float32Array.of(1);
    for (let m = 0; m < M; m++) a[m] = m % 1000;
    const got = await g.read(
      G.linear(g, { x: g.upload(a), M, K: 1, w: g.upload(w), N: 1, b: g.upload(b), act: "none" }),
    ) as Float32Array;
    g.tiling = was;
    for (let m = 0; m < M; m++) if (got[m] !== (m % 1000) * 0.5 + 1) assert.fail(`row ${m}: ${got[m]}`);
  },
});
