/**
 * @file Tests of the WebGPU kernels against the JS kernels on seeded random inputs, and of the device's
 * error paths (gather range, numerics, low-rank guards, WGSL compilation, device loss, missing adapter).
 *
 * Error model (u = 2^-24, the float32 unit roundoff). The JS kernels read the same float32 inputs,
 * accumulate in float64 and round once, so they sit within u·|ref| of the exact result (their float64
 * noise, ~1e-16 of the summed magnitudes, is negligible). The GPU accumulates in float32: a sum of n
 * terms computed in any order is within (n − 1)·u·Σ|terms| (to first order) of the exact sum, and each
 * further rounded operation adds u of its result. Every tolerance below is that a-priori bound, with
 * the op count rounded up, evaluated per element from the inputs in float64; the derivation is next to
 * each test. WGSL's exp/tanh follow the Vulkan precision rules: exp within (3 + 2|x|) ulp, tanh as
 * computed from exp. Copy-like kernels (gather, permute, slice, concat, upsample) and single float
 * operations on float32 inputs (binary add/sub/mul, whose float64 results round to the same float32) must
 * be exact.
 *
 * Without a WebGPU adapter every device test is ignored and the reason is printed at load time.
 */
import assert from "node:assert/strict";
import { bothForms } from "../../tests/_helpers.ts";
import { randomF32, rng } from "../../tests/_rng.ts";
import { smallestDegree } from "../../compiler/lowrank/poly.ts";
import * as JS from "../js/kernels.ts";
import * as JLR from "../js/lowrank.ts";
import { setElementwiseBackend } from "../js/wasm/elementwise.ts";
import * as G from "./kernels.ts";
import { attentionInto, keyTile } from "./attention.ts";
import { DeviceLostError, Gpu, GpuKernelError, type GpuTensor, NoAdapterError, WgslError } from "./device.ts";

const U = 2 ** -24;
/** The smallest normal float32: subnormal results may be flushed to zero on the device. */
const TINY = 2 ** -126;

let gpu: Gpu | null = null;
let skipReason = "";
try {
  gpu = await Gpu.create();
} catch (e) {
  skipReason = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
const ignore = gpu === null;
if (ignore) console.log(`runtime/webgpu tests skipped: no WebGPU device (${skipReason})`);
else console.log(`runtime/webgpu tests on: ${gpu!.info}`);

/** The shared device (only called inside non-ignored tests). */
function dev(): Gpu {
  return gpu!;
}

/** Max |error| and max error/tolerance per kernel, printed at the end. */
const observed = new Map<string, { err: number; ratio: number }>();

/** Asserts |a − b| ≤ tol(i) for every element; records the worst error and error/tolerance. */
function assertWithin(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: (i: number) => number,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let err = 0, ratio = 0;
  for (let i = 0; i < actual.length; i++) {
    const e = Math.abs(actual[i]! - expected[i]!), t = tol(i);
    assert.ok(e <= t, `${what}: element ${i}: ${actual[i]} vs ${expected[i]} (|diff| ${e} > tolerance ${t})`);
    err = Math.max(err, e);
    if (t > 0) ratio = Math.max(ratio, e / t);
  }
  const key = what.split(" ")[0]!;
  const o = observed.get(key) ?? { err: 0, ratio: 0 };
  observed.set(key, { err: Math.max(o.err, err), ratio: Math.max(o.ratio, ratio) });
}

function assertExact(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  assertWithin(what, actual, expected, () => 0);
}

async function readF32(t: GpuTensor): Promise<Float32Array> {
  return await dev().read(t) as Float32Array;
}

function up(x: Float32Array | Int32Array): GpuTensor {
  return dev().upload(x);
}

// ---------------------------------------------------------------------------------------------
// Device

Deno.test("Gpu.create: NoAdapterError without navigator.gpu or without an adapter", async () => {
  await assert.rejects(
    () => Gpu.create(null),
    (e: unknown) => e instanceof NoAdapterError && e.name === "NoAdapterError",
  );
  const noAdapter = { requestAdapter: () => Promise.resolve(null) } as unknown as GPU;
  await assert.rejects(() => Gpu.create(noAdapter), NoAdapterError);
});

Deno.test({
  name: "device: upload/read round trip, zero-initialised tensors, adapter info, size limit",
  ignore,
  async fn() {
    const g = dev();
    assert.ok(g.info.length > 0);
    const f = randomF32(37, 1), i = Int32Array.from({ length: 5 }, (_, k) => k * 7 - 9);
    assert.deepEqual(await g.read(up(f)), f);
    assert.deepEqual(await g.read(up(i)), i);
    assert.deepEqual(await g.read(g.tensor(9, "i32")), new Int32Array(9));
    assert.deepEqual(await g.read(g.tensor(0)), new Float32Array(0));
    g.origin = "%7 linear at spec.ts:3:4";
    const limit = Math.min(g.limits.maxStorageBufferBindingSize, g.limits.maxBufferSize);
    assert.throws(
      () => g.tensor(limit / 4 + 4),
      (e: unknown) =>
        e instanceof RangeError && e.message.includes("%7 linear at spec.ts:3:4") && e.message.includes(String(limit)),
    );
    g.origin = "";
  },
});

Deno.test({
  name: "device: a broken WGSL source is a WgslError with line:col, the numbered source and the origin",
  ignore,
  async fn() {
    const g = dev();
    const code = "@compute @workgroup_size(1)\nfn main() {\n  let x: f32 = 1u;\n}\n";
    g.origin = "%12 linear at spec.ts:4:3";
    await assert.rejects(
      () => g.compile("broken", code),
      (e: unknown) =>
        e instanceof WgslError && e.name === "WgslError" && e.message.includes('"broken"') &&
        /\b3:\d+\b/.test(e.message) && e.message.includes("%12 linear at spec.ts:4:3") &&
        e.message.includes("3 |   let x: f32 = 1u;"),
    );
    // Through a dispatch: recorded synchronously, reported by the next read; later batches still work.
    const code2 =
      "@group(0) @binding(0) var<uniform> P: vec4<u32>;\n@compute @workgroup_size(1)\nfn main() {\n  let y = P.x + 1.5;\n}\n";
    g.dispatch("broken2", code2, [0], [], 1);
    await assert.rejects(
      () => g.read(g.tensor(1)),
      (e: unknown) => e instanceof WgslError && /\b4:\d+\b/.test(e.message),
    );
    assert.throws(() => g.pipeline("broken2", code2), WgslError, "a failed source stays failed");
    g.origin = "";
    assert.deepEqual(
      await g.read(G.scalar(g, { x: up(new Float32Array([1, 2])), fn: "add", value: 1 })),
      new Float32Array([2, 3]),
    );
  },
});

Deno.test({
  name: "device: DeviceLostError once the device is destroyed",
  ignore,
  async fn() {
    const g2 = await Gpu.create();
    const t = g2.upload(new Float32Array([1]));
    g2.destroy();
    await g2.device.lost;
    assert.throws(() => g2.tensor(4), (e: unknown) => e instanceof DeviceLostError && e.message.includes("destroyed"));
    await assert.rejects(() => g2.read(t), DeviceLostError);
  },
});

// ---------------------------------------------------------------------------------------------
// Gather and checks

Deno.test({
  name: "gather: copies rows exactly; an out-of-range index is a GpuKernelError with the JS message",
  ignore,
  async fn() {
    const g = dev();
    const N = 11, C = 6, table = randomF32(N * C, 2);
    const idx = Int32Array.from({ length: 9 }, (_, i) => (i * 5) % N);
    const tt = up(table);
    assertExact(
      "gather",
      await readF32(G.gather(g, { table: tt, N, C, idx: up(idx), what: "x" })),
      JS.gather({ table, N, C, idx, what: "x" }),
    );
    for (const bad of [[3, 11, 2, -1], [-4, 0, 0, 0]]) {
      const bi = Int32Array.from(bad);
      const jsErr = (() => {
        try {
          JS.gather({ table, N, C, idx: bi, what: "node %3 (gather)" });
        } catch (e) {
          return (e as Error).message;
        }
      })()!;
      const out = G.gather(g, { table: tt, N, C, idx: up(bi), what: "node %3 (gather)" });
      await assert.rejects(
        () => g.read(out),
        (e: unknown) => e instanceof GpuKernelError && e.kind === "range" && e.message === jsErr,
      );
    }
    // The report is cleared: the next batch reads normally.
    assertExact(
      "gather",
      await readF32(G.gather(g, { table: tt, N, C, idx: up(idx), what: "x" })),
      JS.gather({ table, N, C, idx, what: "x" }),
    );
  },
});

Deno.test({
  name: "checkFinite: silent on finite data; NaN/Infinity reported with the JS NumericsError message",
  ignore,
  async fn() {
    const g = dev();
    const x = randomF32(300, 3);
    G.checkFinite(g, { x: up(x), what: "forward: %1" });
    await g.flush();
    for (const [at, v] of [[217, NaN], [5, -Infinity]] as const) {
      const y = x.slice();
      y[at] = v;
      y[290] = Infinity; // a later one: the first index is named
      const what = "step_3: %12 (linear) at spec.ts:4:3";
      const jsErr = (() => {
        try {
          JS.checkFinite({ x: y, what });
        } catch (e) {
          return (e as Error).message;
        }
      })()!;
      G.checkFinite(g, { x: up(y), what });
      // A later failing site in the same batch does not replace the first one.
      G.gather(g, { table: up(x), N: 300, C: 1, idx: up(new Int32Array([400])), what: "later" });
      await assert.rejects(
        () => g.flush(),
        (e: unknown) => e instanceof GpuKernelError && e.kind === "numerics" && e.message === jsErr,
      );
    }
  },
});

// ---------------------------------------------------------------------------------------------
// GEMM and normalisation

Deno.test({
  name: "linear / gemmNT: float32 sums within (K + 3)·u·Σ|terms| of the JS kernel",
  ignore,
  async fn() {
    const g = dev();
    // Shapes cover vec4 (K % 4 = 0) and scalar K, 8- and 16-row tiles with partial row blocks, and
    // partial 8-column groups.
    const shapes: [number, number, number, boolean, number][] = [
      [13, 32, 10, true, 1],
      [8, 7, 4, false, 2],
      [1, 20, 333, true, 3],
      [70, 4, 1, false, 4],
      [37, 13, 19, true, 5],
    ];
    for (const [M, K, N, bias, seed] of shapes) {
      const x = randomF32(M * K, 10 + seed), w = randomF32(N * K, 20 + seed), b = bias ? randomF32(N, 30 + seed) : null;
      const ref = JS.linear({ x, M, K, w, N, b, act: "none" });
      const got = await readF32(G.linear(g, { x: up(x), M, K, w: up(w), N, b: b && up(b), act: "none" }));
      // Σ|terms| per output: float32 accumulation of K products (vec4 dots or scalar) plus the bias.
      assertWithin(`linear M=${M} K=${K} N=${N}`, got, ref, (i) => {
        const m = Math.floor(i / N), n = i % N;
        let s = b ? Math.abs(b[n]!) : 0;
        for (let k = 0; k < K; k++) s += Math.abs(x[m * K + k]! * w[n * K + k]!);
        return (K + 3) * U * s + U * Math.abs(ref[i]!);
      });
      // with an activation: the GEMM's output through the unary kernel
      const plain = G.linear(g, { x: up(x), M, K, w: up(w), N, b: b && up(b), act: "none" });
      assert.deepEqual(
        await readF32(G.linear(g, { x: up(x), M, K, w: up(w), N, b: b && up(b), act: "gelu_tanh" })),
        await readF32(G.unary(g, { x: plain, fn: "gelu_tanh" })),
        `linear + gelu_tanh M=${M}`,
      );
    }
    // gemmNT writes into an existing tensor.
    const x = randomF32(5 * 8, 5), w = randomF32(3 * 8, 6), out = g.tensor(15);
    G.gemmNT(g, up(x), 5, 8, up(w), 3, null, out);
    const ref = new Float32Array(15);
    JS.gemmNT(x, 5, 8, w, 3, null, ref);
    assertWithin("linear gemmNT", await readF32(out), ref, (i) => 11 * U * 8 * 16 + U * Math.abs(ref[i]!));
  },
});

Deno.test({
  name: "layerNorm / l2Normalize / groupNorm: within the float32 bounds of two-pass statistics",
  ignore,
  async fn() {
    const g = dev();
    // layerNorm: mean within (C+1)u·max|x|, variance within (C+2)u relative, 1/σ within ((C+2)/2 + 3)u:
    // |Δout| ≤ (C+1)u·max|x|/σ + (C/2 + 5)u·|out| + u|out| ≤ (C + 8)·u·(max|x|/σ + |out|).
    for (const [rows, C, shift] of [[7, 64, 0], [3, 33, 5]] as const) {
      const x = randomF32(rows * C, 40 + C).map((v) => v + shift);
      const ref = JS.layerNorm({ x, C, eps: 1e-6, s: null, b: null, T: 1 });
      const got = await readF32(G.layerNorm(g, { x: up(x), C, eps: 1e-6, s: null, b: null, T: 1 }));
      assertWithin(`layerNorm C=${C}`, got, ref, (i) => {
        const r = Math.floor(i / C) * C, row = x.subarray(r, r + C);
        const mean = row.reduce((a, v) => a + v, 0) / C;
        const sd = Math.sqrt(row.reduce((a, v) => a + (v - mean) ** 2, 0) / C + 1e-6);
        const maxAbs = row.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
        return (C + 8) * U * (maxAbs / sd + Math.abs(ref[i]!));
      });
      // modulated (row r by row r of s and b): the error of h grown by 1 + |s|, plus three roundings
      const sm = randomF32(rows * C, 45 + C), bm = randomF32(rows * C, 46 + C);
      const modRef = JS.layerNorm({ x, C, eps: 1e-6, s: sm, b: bm, T: 1 });
      const mod = await readF32(G.layerNorm(g, { x: up(x), C, eps: 1e-6, s: up(sm), b: up(bm), T: 1 }));
      assertWithin(`layerNorm modulated C=${C}`, mod, modRef, (i) => {
        const r = Math.floor(i / C) * C, row = x.subarray(r, r + C);
        const mean = row.reduce((a, v) => a + v, 0) / C;
        const sd = Math.sqrt(row.reduce((a, v) => a + (v - mean) ** 2, 0) / C + 1e-6);
        const maxAbs = row.reduce((a, v) => Math.max(a, Math.abs(v)), 0), h = Math.abs(ref[i]!);
        return (C + 8) * U * (maxAbs / sd + h) * (1 + Math.abs(sm[i]!)) +
          4 * U * (h + h * Math.abs(sm[i]!) + Math.abs(bm[i]!));
      });
    }
    // l2Normalize: Σx² within (D+1)u relative, √ and 1/· add 2u, the product u: ≤ (D/2 + 5)u·|out| (+u JS).
    const D = 24, x = randomF32(10 * D, 41);
    x.fill(0, 0, D); // an all-zero row: eps keeps it finite
    assertWithin(
      "l2Normalize",
      await readF32(G.l2Normalize(g, { x: up(x), D, eps: 1e-12 })),
      JS.l2Normalize({ x, D, eps: 1e-12 }),
      (i) =>
        (D / 2 + 6) * U * Math.abs(x[i]!) / Math.max(1e-12, Math.hypot(...x.subarray(i - (i % D), i - (i % D) + D))),
    );
    // heads: the same rows of D read in place (k of a packed projection, odd D), then as l2Normalize
    // (the bound above) and τ's product (u more, relative); without eps a copy and one product: exact
    const [B, T, W, H, Dh, start] = [2, 3, 60, 4, 5, 20], xh = randomF32(B * T * W, 47), tau = randomF32(H, 48);
    for (const eps of [null, 1e-12]) {
      for (const t of [null, tau]) {
        const args = { rows: B * T, T, W, start, H, D: Dh, eps };
        const ref = JS.heads({ x: xh, ...args, tau: t });
        const got = await readF32(G.heads(g, { x: up(xh), ...args, tau: t ? up(t) : null }));
        const what = `heads eps ${eps} τ ${t !== null}`;
        if (eps === null) assertExact(what, got, ref);
        else {
          assertWithin(what, got, ref, (i) => {
            const d = i % Dh, tt = Math.floor(i / Dh) % T, h = Math.floor(i / (Dh * T)) % H;
            const b = Math.floor(i / (Dh * T * H)), at = (b * T + tt) * W + start + h * Dh;
            const row = xh.subarray(at, at + Dh), gain = t ? Math.abs(t[h]!) : 1;
            return (Dh / 2 + 7) * U * gain * Math.abs(row[d]!) / Math.max(1e-12, Math.hypot(...row));
          });
        }
      }
    }
    // groupNorm over n = 2·1600 values per group (several chunks merged): as layerNorm with n, then the
    // affine step out = x·(w·inv) + (b − mean·w·inv) adds u of each of its three terms.
    for (const [B, C, S, groups] of [[2, 4, 1600, 2], [1, 6, 9, 3]] as const) {
      const x = randomF32(B * C * S, 42 + S).map((v) => 3 + v * 2), w = randomF32(C, 43), b = randomF32(C, 44);
      const ref = JS.groupNorm({ x, w, b, B, C, S, groups, eps: 1e-5, silu: false });
      const args = { x: up(x), w: up(w), b: up(b), B, C, S, groups, eps: 1e-5 };
      const got = await readF32(G.groupNorm(g, { ...args, silu: false }));
      const n = (C / groups) * S;
      const stats = Array.from({ length: B * groups }, (_, grp) => {
        const vals = x.subarray(grp * n, grp * n + n);
        const mean = vals.reduce((a, v) => a + v, 0) / n;
        const inv = 1 / Math.sqrt(vals.reduce((a, v) => a + (v - mean) ** 2, 0) / n + 1e-5);
        return { mean, inv, maxAbs: vals.reduce((a, v) => Math.max(a, Math.abs(v)), 0) };
      });
      assertWithin(`groupNorm S=${S}`, got, ref, (i) => {
        const bc = Math.floor(i / S), ch = bc % C;
        const { mean, inv, maxAbs } = stats[Math.floor(bc / (C / groups))]!;
        const sc = Math.abs(w[ch]!) * inv;
        return (n + 10) * U * (maxAbs * sc + Math.abs(x[i]! * sc) + Math.abs(mean * sc) + Math.abs(b[ch]!) +
          Math.abs(ref[i]!));
      });
      // with SiLU fused: the same normalised value through the same WGSL expression as unary(silu)
      assert.deepEqual(
        await readF32(G.groupNorm(g, { ...args, silu: true })),
        await readF32(G.unary(g, { x: G.groupNorm(g, { ...args, silu: false }), fn: "silu" })),
        `groupNorm + silu S=${S}`,
      );
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Elementwise and data movement

Deno.test({
  name: "unary / scalar: within the WGSL exp/tanh precision and float32 rounding",
  ignore,
  async fn() {
    const g = dev();
    const x = randomF32(2000, 50, 4);
    x.set([0, -0, 30, -30, 88, -100, 1e-20]);
    const xt = up(x);
    // exp: (3 + 2|x|) ulp (an ulp is ≤ 2u relative) plus the JS rounding u. Devices may flush float32
    // subnormals to zero, so results below 2^-126 are allowed that much absolute error (TINY).
    const expTol = (v: number, ref: number) => ((3 + 2 * Math.abs(v)) * 2 + 1) * U * Math.abs(ref) + TINY;
    // the references: JS's float64 formulas rounded once (the host's SIMD path would add its own error)
    setElementwiseBackend("js");
    const [ex, si, ge] = (["exp", "silu", "gelu_tanh"] as const).map((fn) => JS.unary({ x, fn }));
    setElementwiseBackend("auto");
    assertWithin("unary_exp", await readF32(G.unary(g, { x: xt, fn: "exp" })), ex, (i) => expTol(x[i]!, ex[i]!));
    // silu = v / (1 + e^-v): the exp error enters scaled by e^-v/(1 + e^-v) ≤ 1; then 1 + ·, / add 2u.
    assertWithin(
      "unary_silu",
      await readF32(G.unary(g, { x: xt, fn: "silu" })),
      si,
      (i) => ((3 + 2 * Math.abs(x[i]!)) * 2 + 4) * U * Math.abs(si[i]!) + TINY,
    );
    // gelu_tanh: tanh(z) from exp carries (3 + 2|z|)·2u relative error on e^±z, i.e. ≤ 4(3 + 2|z|)·2u
    // absolute on tanh (|z| ≤ 10 after clamping); 0.5·v·(1 + t) scales it by |v|/2 and adds 4u relative.
    assertWithin("unary_gelu_tanh", await readF32(G.unary(g, { x: xt, fn: "gelu_tanh" })), ge, (i) => {
      const v = x[i]!, z = Math.min(10, Math.abs(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
      return 0.5 * Math.abs(v) * 4 * (3 + 2 * z) * 2 * U + 5 * U * Math.abs(ge[i]!) + TINY;
    });
    // scalar: c is rounded to float32 (u|c|), then one float32 operation (u of the result).
    for (const fn of ["mul", "add", "min", "max"] as const) {
      const c = fn === "mul" ? 1 / 3 : 0.7;
      const ref = JS.scalar({ x, fn, value: c });
      assertWithin(
        `scalar_${fn}`,
        await readF32(G.scalar(g, { x: xt, fn, value: c })),
        ref,
        (i) => 2 * U * (Math.abs(ref[i]!) + (fn === "mul" ? Math.abs(x[i]! * c) : Math.abs(c))),
      );
    }
  },
});

Deno.test({
  name: "binary and addMul (broadcast, rank ≤ 6), permute (f32/i32), slice, concat, levelIds, upsampleNearest: exact",
  ignore,
  async fn() {
    const g = dev();
    const contiguous = (s: readonly number[]) => {
      const st = new Array<number>(s.length);
      for (let d = s.length - 1, p = 1; d >= 0; d--) st[d] = p, p *= s[d]!;
      return st;
    };
    // [2, 3, 5] op [1, 3, 1]-broadcast; rank 6 with broadcasts on both sides; rank 1.
    const cases: [number[], number[], number[]][] = [
      [[2, 3, 5], contiguous([2, 3, 5]), [0, 1, 0]],
      [[2, 1, 3, 2, 2, 3], [0, 0, 12, 6, 3, 1], contiguous([2, 1, 3, 2, 2, 3])],
      [[17], [1], [0]],
    ];
    for (const [shape, as, bs] of cases) {
      const n = shape.reduce((a, d) => a * d, 1);
      const span = (st: number[]) => 1 + shape.reduce((a, d, i) => a + (d - 1) * st[i]!, 0);
      const a = randomF32(span(as), 60), b = randomF32(span(bs), 61);
      for (const fn of ["add", "sub", "mul"] as const) {
        const got = await readF32(G.binary(g, { a: up(a), b: up(b), fn, shape, aStrides: as, bStrides: bs }));
        assert.equal(got.length, n);
        assertExact(`binary_${fn} [${shape}]`, got, JS.binary({ a, b, fn, shape, aStrides: as, bStrides: bs }));
      }
      // a + b·c, c read as a is: the product and the sum rounded apart, as the JS kernel does
      const c = randomF32(span(as), 63), args = { shape, aStrides: as, bStrides: bs, cStrides: as };
      const got = await readF32(G.addMul(g, { a: up(a), b: up(b), c: up(c), ...args }));
      assertExact(`addMul [${shape}]`, got, JS.addMul({ a, b, c, ...args }));
    }
    // permute
    const sh4 = [2, 3, 4, 5], x4 = randomF32(120, 62);
    assertExact(
      "permute f32",
      await readF32(G.permute(g, { x: up(x4), shape: sh4, perm: [2, 0, 3, 1] })),
      JS.permute({ x: x4, shape: sh4, perm: [2, 0, 3, 1] }),
    );
    const sh6 = [2, 1, 3, 2, 2, 3], i6 = Int32Array.from({ length: 72 }, (_, i) => i * 3 - 50);
    const gotI = await g.read(G.permute(g, { x: up(i6), shape: sh6, perm: [5, 3, 1, 0, 4, 2] }));
    assert.ok(gotI instanceof Int32Array);
    assertExact("permute i32", gotI, JS.permute({ x: i6, shape: sh6, perm: [5, 3, 1, 0, 4, 2] }));
    // slice (f32, i32), concat
    assertExact(
      "slice f32",
      await readF32(G.slice(g, { x: up(x4), outer: 6, size: 4, inner: 5, start: 1, end: 3 })),
      JS.slice({ x: x4, outer: 6, size: 4, inner: 5, start: 1, end: 3 }),
    );
    assertExact(
      "slice i32",
      await g.read(G.slice(g, { x: up(i6), outer: 4, size: 18, inner: 1, start: 5, end: 18 })),
      JS.slice({ x: i6, outer: 4, size: 18, inner: 1, start: 5, end: 18 }),
    );
    const parts = [randomF32(2 * 3 * 4, 63), randomF32(2 * 1 * 4, 64), randomF32(2 * 5 * 4, 65)];
    assertExact(
      "concat",
      await readF32(G.concat(g, { xs: parts.map(up), outer: 2, sizes: [3, 1, 5], inner: 4 })),
      JS.concat({ xs: parts, outer: 2, sizes: [3, 1, 5], inner: 4 }),
    );
    // levelIds, upsampleNearest
    assertExact(
      "levelIds",
      await g.read(G.levelIds(g, { schedule: [1, 2, 3, 5] })),
      JS.levelIds({ schedule: [1, 2, 3, 5] }),
    );
    const xu = randomF32(3 * 4 * 5, 66);
    assertExact(
      "upsampleNearest",
      await readF32(G.upsampleNearest(g, { x: up(xu), BC: 3, h: 4, w: 5, factor: 3 })),
      JS.upsampleNearest({ x: xu, BC: 3, h: 4, w: 5, factor: 3 }),
    );
  },
});

Deno.test({
  name: "dispatches over 65535 workgroups are folded into 2-D grids",
  ignore,
  async fn() {
    const g = dev();
    const n = 65536 * 64 + 100, x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = i % 1000;
    const got = await readF32(G.scalar(g, { x: up(x), fn: "add", value: 1 }));
    for (let i = 0; i < n; i++) if (got[i] !== (i % 1000) + 1) assert.fail(`element ${i}: ${got[i]}`);
  },
});

// ---------------------------------------------------------------------------------------------
// Attention, convolution, resampling

/** Max |v| per head of v [BH, Tk, Dv]. */
function headMaxAbs(v: Float32Array, BH: number): number[] {
  const per = v.length / BH;
  return Array.from(
    { length: BH },
    (_, h) => v.subarray(h * per, (h + 1) * per).reduce((a, x) => Math.max(a, Math.abs(x)), 0),
  );
}

/**
 * Tolerance of exact attention for row (bh, i) over its n keys, with the logits l_j of the row in key order:
 * - each logit carries ≤ δ = (D + 4)u·|s|·Σ_d|q_d k_d| from the float32 dot, the pre-scaled q and the
 *   products (counted twice: in l_j and in the running max it is shifted by);
 * - the kernel rescales by e^(m_old − m_new) each time the running max grows, at most r times, r counted
 *   on the float64 logits with a δ margin (a float32 rise can only happen where l_j > max − 2δ); each
 *   weight is a product of its own e^x and the later rescales, Vulkan exp error (3 + 2|x|) ulp ≤ (3 + 2|x|)·2u
 *   relative for results ≤ 1, and the |x| telescope to at most the logit spread: (3(r + 1) + 2·spread)·2u;
 * - the numerator and denominator are float32 sums of n terms, each rescale one more rounding: (n + r + 2)u.
 * A relative perturbation ≤ ε of every weight moves a softmax average by ≤ 2ε/(1 − ε)·‖V‖_∞; the output
 * rounding adds u·‖V‖_∞. Roughly (D + n)·u·‖V‖_∞ scaled by the logit magnitudes, as in
 * runtime/js/wasm/attention_test.ts.
 */
function attentionTol(
  q: Float32Array,
  k: Float32Array,
  Tq: number,
  Tk: number,
  D: number,
  scale: number,
  ranges: JS.KeyRanges,
  vmax: readonly number[],
): (bh: number, i: number) => number {
  return (bh, i) => {
    const logits: number[] = [];
    let dotAbs = 0;
    for (let j = ranges.lo[i]!; j < ranges.hi[i]!; j++) {
      let s = 0, a = 0;
      for (let d = 0; d < D; d++) {
        const p = q[(bh * Tq + i) * D + d]! * k[(bh * Tk + j) * D + d]!;
        s += p, a += Math.abs(p);
      }
      dotAbs = Math.max(dotAbs, a), logits.push(s * scale);
    }
    const delta = (D + 4) * U * Math.abs(scale) * dotAbs;
    let r = 0, max = -Infinity;
    for (const l of logits) {
      if (l > max - 2 * delta) r++;
      max = Math.max(max, l);
    }
    const n = logits.length, spread = Math.max(...logits) - Math.min(...logits);
    const eps = 2 * delta + (3 * (r + 1) + 2 * spread) * 2 * U + (n + r + 2) * U;
    return (2 * eps / (1 - eps) + U) * vmax[bh]!;
  };
}

/** Random q, k, v of the given shapes (q, k with standard deviation 1.5), seeded by `seed`. */
function attentionInputs(seed: number, BH: number, Tq: number, Tk: number, D: number, Dv: number) {
  return {
    q: randomF32(BH * Tq * D, seed, 1.5),
    k: randomF32(BH * Tk * D, seed + 1, 1.5),
    v: randomF32(BH * Tk * Dv, seed + 2),
  };
}

Deno.test({
  name: "attention, tiled and row forms: full, block-causal and windowed key ranges, across query blocks and key tiles",
  ignore,
  async fn() {
    const g = dev();
    // [1..6] has L = 91: two 64-query blocks (the second partial) whose ranges change mid-block; with
    // D = Dv = 32 the 64-key tiles (16 KiB) end inside ranges (the fixture's D = 64 runs in the row form on
    // llvmpipe; its tiled form takes minutes to JIT-compile there with a cold shader cache). Odd D/Dv take
    // the scalar loads.
    const schedule = [1, 2, 3, 4, 5, 6], L = 91;
    const cases: [string, number, number, number, number, number, JS.KeyRanges][] = [
      ["full", 2, 70, 9, 7, 5, JS.fullKeyRanges(70, 9)],
      ["causal", 2, L, L, 8, 12, JS.scaleKeyRanges(schedule, Infinity)],
      ["window2", 2, L, L, 5, 8, JS.scaleKeyRanges(schedule, 2)],
      ["causal", 2, L, L, 32, 32, JS.scaleKeyRanges(schedule, Infinity)],
    ];
    await bothForms(g, async (form) => {
      for (const [name, BH, Tq, Tk, D, Dv, ranges] of cases) {
        const scale = 1 / Math.sqrt(D), { q, k, v } = attentionInputs(70, BH, Tq, Tk, D, Dv);
        const ref = JS.attention({ q, k, v, BH, Tq, Tk, D, Dv, scale, ranges });
        const got = await readF32(G.attention(g, { q: up(q), k: up(k), v: up(v), BH, Tq, Tk, D, Dv, scale, ranges }));
        const tol = attentionTol(q, k, Tq, Tk, D, scale, ranges, headMaxAbs(v, BH));
        assertWithin(`attention/${form} ${name} D=${D} Dv=${Dv}`, got, ref, (i) => {
          const row = Math.floor(i / Dv);
          return tol(Math.floor(row / Tq), row % Tq);
        });
      }
    });
  },
});

Deno.test({
  name: "attention with a head mask: masked-out heads of the output are left untouched",
  ignore,
  async fn() {
    const g = dev();
    const BH = 3, schedule = [1, 2, 3, 4, 5, 6], L = 91, D = 32, Dv = 32, scale = 1 / Math.sqrt(D);
    const ranges = JS.scaleKeyRanges(schedule, Infinity), { q, k, v } = attentionInputs(75, BH, L, L, D, Dv);
    const ref = JS.attention({ q, k, v, BH, Tq: L, Tk: L, D, Dv, scale, ranges });
    const tol = attentionTol(q, k, L, L, D, scale, ranges, headMaxAbs(v, BH));
    await bothForms(g, async (form) => {
      const out = up(new Float32Array(BH * L * Dv).fill(7));
      attentionInto(g, up(q), up(k), up(v), BH, L, L, D, Dv, scale, ranges, out, up(new Int32Array([1, 0, 1])));
      const got = await readF32(out), h = L * Dv;
      assertExact(`attention/${form} masked-out head`, got.subarray(h, 2 * h), new Float32Array(h).fill(7));
      for (const bh of [0, 2]) {
        assertWithin(
          `attention/${form} masked`,
          got.subarray(bh * h, (bh + 1) * h),
          ref.subarray(bh * h, (bh + 1) * h),
          (i) => tol(bh, Math.floor(i / Dv)),
        );
      }
    });
  },
});

Deno.test("attention key tile: ⌊bytes / 4(D + Dv)⌋ keys, a RangeError naming D, Dv and the limit when none fits", () => {
  assert.equal(keyTile(64, 64, 16384), 32);
  assert.equal(keyTile(5, 3, 16384), 512);
  assert.equal(keyTile(2048, 2048, 16384), 1);
  assert.throws(
    () => keyTile(2048, 2049, 16384),
    (e) => e instanceof RangeError && /D = 2048 and Dv = 2049/.test(e.message) && /16384/.test(e.message),
  );
});

Deno.test({
  name: "conv2d: within (Ci·kh·kw + 3)·u·Σ|terms| of the JS kernel",
  ignore,
  async fn() {
    const g = dev();
    // Partial and several 8-channel groups, partial 4-pixel groups, 1×1 and non-square kernels.
    const shapes = [
      [2, 3, 5, 6, 5, 3, 3, 1],
      [1, 4, 7, 3, 2, 1, 1, 0],
      [1, 2, 4, 4, 4, 3, 2, 2],
      [2, 3, 6, 5, 11, 3, 3, 1],
    ];
    for (const [B, Ci, H, W, Co, kh, kw, pad] of shapes) {
      const x = randomF32(B * Ci * H * W, 80 + Ci), w = randomF32(Co * Ci * kh * kw, 81), b = randomF32(Co, 82);
      const ref = JS.conv2d({ x, B, Ci, H, W, w, Co, kh, kw, b, pad });
      const got = await readF32(G.conv2d(g, { x: up(x), B, Ci, H, W, w: up(w), Co, kh, kw, b: up(b), pad }));
      const Ho = H + 2 * pad - kh + 1, Wo = W + 2 * pad - kw + 1, K = Ci * kh * kw;
      assertWithin(`conv2d ${kh}x${kw} pad ${pad}`, got, ref, (i) => {
        const ox = i % Wo, oy = Math.floor(i / Wo) % Ho, co = Math.floor(i / (Ho * Wo)) % Co;
        const n = Math.floor(i / (Ho * Wo * Co));
        let s = Math.abs(b[co]!);
        for (let ci = 0; ci < Ci; ci++) {
          for (let dy = 0; dy < kh; dy++) {
            for (let dx = 0; dx < kw; dx++) {
              const iy = oy + dy - pad, ix = ox + dx - pad;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              s += Math.abs(x[((n * Ci + ci) * H + iy) * W + ix]! * w[((co * Ci + ci) * kh + dy) * kw + dx]!);
            }
          }
        }
        return (K + 3) * U * s + U * Math.abs(ref[i]!);
      });
    }
  },
});

Deno.test({
  name: "interpolate (bicubic up/down, area): within (h + w + 8)·u·Σ|M_y||X||M_x|",
  ignore,
  async fn() {
    const g = dev();
    const shapes = [
      [3, 4, 5, 9, "bicubic"],
      [2, 10, 8, 3, "bicubic"],
      [2, 12, 12, 5, "area"],
    ] as const;
    for (const [BC, h, w, size, mode] of shapes) {
      const x = randomF32(BC * h * w, 90 + size);
      const ref = JS.interpolate({ x, BC, h, w, size, mode });
      const got = await readF32(G.interpolate(g, { x: up(x), BC, h, w, size, mode }));
      const my = JS.resampleMatrix(mode, h, size), mx = JS.resampleMatrix(mode, w, size);
      // Two passes of ≤ h and ≤ w products with float32-rounded weights (u each) and one rounding each.
      assertWithin(`interpolate ${mode} ${h}x${w}->${size}`, got, ref, (i) => {
        const p = i % size, o = Math.floor(i / size) % size, c = Math.floor(i / (size * size));
        let s = 0;
        for (let a = 0; a < h; a++) {
          for (let b = 0; b < w; b++) s += Math.abs(my[o * h + a]! * mx[p * w + b]! * x[(c * h + a) * w + b]!);
        }
        return (h + w + 8) * U * s + U * Math.abs(ref[i]!);
      });
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Low-rank attention

/** P̄(x) = Σ_t |p_t| x^t. */
function absPoly(p: readonly number[], x: number): number {
  return p.reduce((a, c, t) => a + Math.abs(c) * x ** t, 0);
}

/** Rows of random direction with norms in [0.2, 1]·maxNorm, row 0 exactly at maxNorm. */
function rowsAtNorm(seed: number, rows: number, d: number, maxNorm: number): Float32Array {
  const r = rng(seed), out = new Float32Array(rows * d);
  for (let i = 0; i < rows; i++) {
    const row = Array.from({ length: d }, () => r.normal()), n = Math.hypot(...row);
    const target = (i === 0 ? 1 : 0.2 + 0.8 * r.uniform()) * maxNorm;
    row.forEach((v, c) => (out[i * d + c] = (v * target) / n));
  }
  return out;
}

/** q, k with |s|·max‖q‖·max‖k‖ = β(1 − 1e-4) in every head; v normal. */
function lowrankInputs(
  seed: number,
  BH: number,
  Tq: number,
  Tk: number,
  D: number,
  Dv: number,
  s: number,
  beta: number,
) {
  const q = new Float32Array(BH * Tq * D), k = new Float32Array(BH * Tk * D);
  const prod = (beta * (1 - 1e-4)) / Math.abs(s);
  for (let h = 0; h < BH; h++) {
    const qn = Math.sqrt(prod) * (0.7 + 0.2 * h);
    q.set(rowsAtNorm(seed + 2 * h, Tq, D, qn), h * Tq * D);
    k.set(rowsAtNorm(seed + 2 * h + 1, Tk, D, prod / qn), h * Tk * D);
  }
  return { q, k, v: randomF32(BH * Tk * Dv, seed + 99) };
}

/**
 * Low-rank output tolerance: with n keys per row, r features of degree ≤ g, the float32 state, features
 * and read sums carry γ = (n + r + 2g + 8)·u of Σ_α|c_α φ_q φ_k|·|v| ≤ n·P̄(β)·‖V‖_∞ (numerator) and
 * n·P̄(β) (denominator), against a denominator ≥ n(1 − ε)e^{−β}: |Δout| ≤ 2γa/(1 − γa)·‖V‖_∞ with
 * a = P̄(β)e^β/(1 − ε), plus u·‖V‖_∞ per rounding of the two outputs.
 */
function lowrankTol(
  nKeys: number,
  r: number,
  g: number,
  coeffs: readonly number[],
  beta: number,
  eps: number,
  vmax: number,
) {
  const gamma = (nKeys + r + 2 * g + 8) * U, a = (absPoly(coeffs, beta) * Math.exp(beta)) / (1 - eps);
  return ((2 * gamma * a) / (1 - gamma * a) + 2 * U) * vmax;
}

Deno.test({
  name: "lowrankAttention: plain, block-causal and windowed forms match the JS kernel; guard counts agree",
  ignore,
  async fn() {
    const g = dev();
    const D = 6, Dv = 5, BH = 2, beta = 1.5, eps = 1e-3, s = 1 / Math.sqrt(D);
    const p = smallestDegree("chebyshev", beta, eps)!;
    const table = JLR.featureTable(D, p.coeffs, s);
    const schedule = [1, 2, 3], sizes = schedule.map((n) => n * n), L = 14;
    const forms: [string, number, number, number[] | null, number][] = [
      ["plain", 5, 9, null, Infinity],
      ["causal", L, L, sizes, Infinity],
      ["window2", L, L, sizes, 2],
      ["window1", L, L, sizes, 1],
    ];
    for (const [name, Tq, Tk, sz, window] of forms) {
      const ranges = sz ? JS.scaleKeyRanges(schedule, window) : JS.fullKeyRanges(Tq, Tk);
      const { q, k, v } = lowrankInputs(100 + Tq, BH, Tq, Tk, D, Dv, s, beta);
      const js0 = { ...JLR.guardStats }, gpu0 = await g.guardStats();
      const ref = JLR.lowrankAttention({
        q,
        k,
        v,
        BH,
        Tq,
        Tk,
        D,
        Dv,
        scale: s,
        sizes: sz,
        window,
        table,
        beta,
        exactRanges: ranges,
      });
      const got = await readF32(
        G.lowrankAttention(g, {
          q: up(q),
          k: up(k),
          v: up(v),
          BH,
          Tq,
          Tk,
          D,
          Dv,
          scale: s,
          sizes: sz,
          window,
          table,
          beta,
          exactRanges: ranges,
        }),
      );
      const gpu1 = await g.guardStats();
      assert.equal(gpu1.checks - gpu0.checks, JLR.guardStats.checks - js0.checks);
      assert.equal(gpu1.fallbacks - gpu0.fallbacks, JLR.guardStats.fallbacks - js0.fallbacks);
      assert.equal(gpu1.fallbacks - gpu0.fallbacks, 0);
      const vmax = headMaxAbs(v, BH);
      assertWithin(`lowrankAttention ${name}`, got, ref, (i) => {
        const row = Math.floor(i / Dv), t = row % Tq;
        return lowrankTol(
          ranges.hi[t]! - ranges.lo[t]!,
          table.r,
          p.degree,
          p.coeffs,
          beta,
          eps,
          vmax[Math.floor(row / Tq)]!,
        );
      });
    }
  },
});

Deno.test({
  name: "lowrankAttention guard: offending heads fall back to exact attention, counted like the JS kernel",
  ignore,
  async fn() {
    const g = dev();
    const D = 6, Dv = 3, BH = 4, beta = 1.5, s = 1 / Math.sqrt(D);
    const p = smallestDegree("chebyshev", beta, 1e-3)!;
    const table = JLR.featureTable(D, p.coeffs, s);
    const schedule = [1, 2, 3], sizes = schedule.map((n) => n * n), L = 14;
    const ranges = JS.scaleKeyRanges(schedule, Infinity);
    const { q, k, v } = lowrankInputs(7, BH, L, L, D, Dv, s, beta);
    // Head 1: queries ×1.5; head 3: its last key becomes key 0 ×1.2. Heads 0 and 2 stay within β.
    for (let i = 0; i < L * D; i++) q[L * D + i]! *= 1.5;
    for (let c = 0; c < D; c++) k[(4 * L - 1) * D + c] = k[3 * L * D + c]! * 1.2;
    const js0 = { ...JLR.guardStats }, gpu0 = await g.guardStats();
    const ref = JLR.lowrankAttention({
      q,
      k,
      v,
      BH,
      Tq: L,
      Tk: L,
      D,
      Dv,
      scale: s,
      sizes,
      window: Infinity,
      table,
      beta,
      exactRanges: ranges,
    });
    const got = await readF32(
      G.lowrankAttention(g, {
        q: up(q),
        k: up(k),
        v: up(v),
        BH,
        Tq: L,
        Tk: L,
        D,
        Dv,
        scale: s,
        sizes,
        window: Infinity,
        table,
        beta,
        exactRanges: ranges,
      }),
    );
    const gpu1 = await g.guardStats();
    assert.equal(JLR.guardStats.fallbacks - js0.fallbacks, 2);
    assert.equal(gpu1.fallbacks - gpu0.fallbacks, 2, "one fallback per offending head on the device");
    assert.equal(gpu1.checks - gpu0.checks, JLR.guardStats.checks - js0.checks);
    // Fallback heads are exact attention (float32 softmax tolerance); the others low-rank.
    const vmax = headMaxAbs(v, BH), exactTol = attentionTol(q, k, L, L, D, s, ranges, vmax);
    assertWithin("lowrankAttention guard", got, ref, (i) => {
      const row = Math.floor(i / Dv), bh = Math.floor(row / L), t = row % L;
      return bh === 1 || bh === 3
        ? exactTol(bh, t)
        : lowrankTol(ranges.hi[t]! - ranges.lo[t]!, table.r, p.degree, p.coeffs, beta, 1e-3, vmax[bh]!);
    });
    // The exact heads really are exact attention, not the polynomial.
    const exact = JS.attention({ q, k, v, BH, Tq: L, Tk: L, D, Dv, scale: s, ranges });
    for (const bh of [1, 3]) {
      const h = L * Dv;
      assertWithin(
        "lowrankAttention fallback-exact",
        got.subarray(bh * h, (bh + 1) * h),
        exact.subarray(bh * h, (bh + 1) * h),
        (i) => exactTol(bh, Math.floor(i / Dv)),
      );
    }
  },
});

Deno.test({
  name: "lowrankState / lowrankRead: float32 state and reads match the JS kernels; guards are GpuKernelErrors",
  ignore,
  async fn() {
    const g = dev();
    const D = 5, Dv = 3, BH = 2, T = 4, beta = 1, s = -0.7 / Math.sqrt(D);
    const p = smallestDegree("taylor", beta, 1e-3)!;
    const table = JLR.featureTable(D, p.coeffs, s), r = table.r, W = Dv + 1;
    const qNorm = 1.3, keyNorm = beta / (Math.abs(s) * qNorm);
    const k1 = new Float32Array(BH * T * D), k2 = new Float32Array(BH * T * D);
    for (let h = 0; h < BH; h++) {
      k1.set(rowsAtNorm(200 + h, T, D, keyNorm * (1 - 1e-4)), h * T * D);
      k2.set(rowsAtNorm(210 + h, T, D, keyNorm * 0.9), h * T * D);
    }
    const v1 = randomF32(BH * T * Dv, 220), v2 = randomF32(BH * T * Dv, 221);
    const ref1 = JLR.lowrankState({ k: k1, v: v1, prev: null, BH, T, D, Dv, table, keyNorm, what: "t" });
    const ref2 = JLR.lowrankState({ k: k2, v: v2, prev: ref1, BH, T, D, Dv, table, keyNorm, what: "t" });
    const st1 = G.lowrankState(g, { k: up(k1), v: up(v1), prev: null, BH, T, D, Dv, table, keyNorm, what: "t" });
    const st2 = G.lowrankState(g, { k: up(k2), v: up(v2), prev: st1, BH, T, D, Dv, table, keyNorm, what: "t" });
    // State entry (bh, i, c): prev + Σ_j φ_k(k_j)[i]·(v_jc or 1); the feature product costs ≤ g·u, the
    // T-term float32 sum (T + 1)u of Σ|terms| (|φ(k)| = φ(|k|)), the float32 prev u of itself.
    const absSum = (k: Float32Array, v: Float32Array) => {
      const out = new Float64Array(BH * r * W), f = new Float64Array(r);
      for (let h = 0; h < BH; h++) {
        for (let j = 0; j < T; j++) {
          JLR.features(k.map(Math.abs), (h * T + j) * D, table, f);
          for (let i = 0; i < r; i++) {
            for (let c = 0; c < Dv; c++) out[(h * r + i) * W + c]! += f[i]! * Math.abs(v[(h * T + j) * Dv + c]!);
            out[(h * r + i) * W + Dv]! += f[i]!;
          }
        }
      }
      return out;
    };
    const a1 = absSum(k1, v1), a2 = absSum(k2, v2);
    const got1 = await readF32(st1);
    assertWithin("lowrankState", got1, ref1, (i) => (T + p.degree + 3) * U * a1[i]! + U * Math.abs(ref1[i]!));
    assertWithin(
      "lowrankState (prev)",
      await readF32(st2),
      ref2,
      (i) => (T + p.degree + 3) * U * (a1[i]! + a2[i]!) + 2 * U * (Math.abs(ref1[i]!) + Math.abs(ref2[i]!)),
    );
    // Read from the same float32 state: numerator N_c and denominator Dn each carry (r + g + 3)u of
    // A_c = Σ_m |coef_m φ_q[m] S_m,c|: |Δout| ≤ γ(A_c + |out|·A_Dv)/(|Dn| − γA_Dv) + u|out| (JS rounding).
    const q = new Float32Array(BH * T * D);
    for (let h = 0; h < BH; h++) q.set(rowsAtNorm(230 + h, T, D, qNorm), h * T * D);
    const before = { ...JLR.guardStats }, gpu0 = await g.guardStats();
    const ref = JLR.lowrankRead({ q, state: ref2, BH, T, D, Dv, scale: s, table, beta, keyNorm, what: "t" });
    const got = await readF32(
      G.lowrankRead(g, { q: up(q), state: up(ref2), BH, T, D, Dv, scale: s, table, beta, keyNorm, what: "t" }),
    );
    assert.equal((await g.guardStats()).checks - gpu0.checks, JLR.guardStats.checks - before.checks);
    const f = new Float64Array(r), gamma = (r + p.degree + 3) * U;
    assertWithin("lowrankRead", got, ref, (i) => {
      const row = Math.floor(i / Dv), c = i % Dv, h = Math.floor(row / T);
      JLR.features(q, row * D, table, f);
      let ac = 0, ad = 0, dn = 0;
      for (let m = 0; m < r; m++) {
        const w = f[m]! * table.coef[m]!;
        ac += Math.abs(w * ref2[(h * r + m) * W + c]!);
        ad += Math.abs(w * ref2[(h * r + m) * W + Dv]!);
        dn += w * ref2[(h * r + m) * W + Dv]!;
      }
      return (gamma * (ac + Math.abs(ref[i]!) * ad)) / (Math.abs(dn) - gamma * ad) + U * Math.abs(ref[i]!);
    });

    // Guards: a key of head 1 at 1.1·keyNorm; queries at 1.05·β. Messages as the JS GuardError's.
    const bad = k1.slice();
    for (let c = 0; c < D; c++) bad[(2 * T - 1) * D + c] = bad[T * D + c]! * 1.1 / (1 - 1e-4);
    const jsMsg = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        assert.ok(e instanceof JLR.GuardError);
        return e.message;
      }
      assert.fail("the JS kernel did not throw");
    };
    const stateMsg = jsMsg(() =>
      JLR.lowrankState({ k: bad, v: v1, prev: ref1, BH, T, D, Dv, table, keyNorm, what: "block 3" })
    );
    const badState = G.lowrankState(g, {
      k: up(bad),
      v: up(v1),
      prev: up(ref1),
      BH,
      T,
      D,
      Dv,
      table,
      keyNorm,
      what: "block 3",
    });
    await assert.rejects(
      () => g.read(badState),
      (e: unknown) =>
        e instanceof GpuKernelError && e.kind === "guard" && e.message.startsWith("block 3: a key has norm") &&
        e.message.includes(keyNorm.toPrecision(4)) && e.message.includes((1.1 * keyNorm).toPrecision(3)) &&
        e.message.slice(e.message.indexOf(">")) === stateMsg.slice(stateMsg.indexOf(">")),
    );
    const qBad = new Float32Array(BH * T * D);
    for (let h = 0; h < BH; h++) {
      qBad.set(rowsAtNorm(240 + h, T, D, (1.05 * beta) / (Math.abs(s) * keyNorm)).reverse(), h * T * D);
    }
    const readMsg = jsMsg(() =>
      JLR.lowrankRead({ q: qBad, state: ref2, BH, T, D, Dv, scale: s, table, beta, keyNorm, what: "block 3" })
    );
    const badRead = G.lowrankRead(g, {
      q: up(qBad),
      state: up(ref2),
      BH,
      T,
      D,
      Dv,
      scale: s,
      table,
      beta,
      keyNorm,
      what: "block 3",
    });
    await assert.rejects(
      () => g.read(badRead),
      (e: unknown) =>
        e instanceof GpuKernelError && e.kind === "guard" && e.message.startsWith("block 3: logits reach") &&
        e.message.includes((1.05 * beta).toPrecision(3)) &&
        e.message.slice(e.message.indexOf(">")) === readMsg.slice(readMsg.indexOf(">")),
    );
  },
});

Deno.test({
  name: "summary: max observed errors per kernel",
  ignore,
  fn() {
    for (const [k, o] of [...observed].sort()) {
      console.log(
        `  ${k.padEnd(22)} max |gpu − js| ${o.err.toExponential(2)}  max error/tolerance ${o.ratio.toExponential(2)}`,
      );
    }
  },
});
