/**
 * @file The WebGPU buffer pool: repeated work stops creating buffers, pooled buffers leak no old data
 * (kernels on a pool of NaN-filled buffers give bitwise the results of a fresh device), zeroed tensors,
 * uploads never overwrite a buffer that a pending dispatch still reads, trimming and double release.
 * Skipped, saying why, only where no WebGPU adapter exists.
 */
import assert from "node:assert/strict";
import { findAdapter } from "../../cli/compile.ts";
import { smallestDegree } from "../../compiler/lowrank/poly.ts";
import { compile } from "../../compiler/mod.ts";
import { fullKeyRanges, scaleKeyRanges } from "../js/kernels.ts";
import { featureTable } from "../js/lowrank.ts";
import { bindModel, type Device, importModel, type LoadedModel, type ModelModule } from "../mod.ts";
import { randomCheckpoint, randomF32 } from "../random.ts";
import { Gpu, type GpuTensor } from "./device.ts";
import * as G from "./kernels.ts";

const adapter = await findAdapter();
if (!adapter) console.log("webgpu pool tests skipped: navigator.gpu gives no adapter on this machine");
const ignore = !adapter;

/** Fills the pool with `copies` NaN-filled buffers of every size class up to `maxBytes`. */
async function poison(g: Gpu, maxBytes: number, copies: number): Promise<void> {
  const ts: GpuTensor[] = [];
  for (let p = 16; p <= maxBytes; p *= 2) {
    for (let bytes = p; bytes < 2 * p; bytes += Math.max(16, p / 4)) {
      for (let c = 0; c < copies; c++) ts.push(g.upload(new Float32Array(bytes / 4).fill(NaN)));
    }
  }
  await g.flush();
  for (const t of ts) g.release(t);
}

/** Low-rank inputs (heads 1 and 3 exceed β and fall back to exact attention) and host constants, made once. */
const D = 6, Dv = 5, BH = 4, L = 14, scale = 1 / Math.sqrt(D), schedule = [1, 2, 3];
const sizes = schedule.map((n) => n * n);
const q = randomF32(BH * L * D, 1, 0.4), k = randomF32(BH * L * D, 2, 0.4), v = randomF32(BH * L * Dv, 3);
for (let i = 0; i < L * D; i++) q[L * D + i]! *= 4, q[3 * L * D + i]! *= 4;
const maxNorm = (x: Float32Array, h: number) => {
  let m = 0;
  for (let t = 0; t < L; t++) {
    let n = 0;
    for (let c = 0; c < D; c++) n += x[(h * L + t) * D + c]! ** 2;
    m = Math.max(m, Math.sqrt(n));
  }
  return m;
};
const betas = [0, 1, 2, 3].map((h) => scale * maxNorm(q, h) * maxNorm(k, h));
const beta = Math.max(betas[0]!, betas[2]!) * 1.1;
const keyNorm = Math.max(...[0, 1, 2, 3].map((h) => maxNorm(k, h))) * 1.01;
const table = featureTable(D, smallestDegree("chebyshev", beta, 1e-3)!.coeffs, scale);
const ranges = [scaleKeyRanges(schedule, Infinity), scaleKeyRanges(schedule, 2), scaleKeyRanges(schedule, 1)];
const full = fullKeyRanges(L, L);

/**
 * Kernels whose outputs are written in parts (masked heads, per-scale rows, copies into slices) or that
 * keep temporaries, on small random inputs; returns every result read back and releases all tensors.
 */
async function partialWrites(g: Gpu): Promise<(Float32Array | Int32Array)[]> {
  assert.ok(betas[1]! > beta && betas[3]! > beta, `fallback heads: ${betas} vs β ${beta}`);
  const inputs: GpuTensor[] = [];
  const up = (x: Float32Array | Int32Array) => {
    inputs.push(g.upload(x));
    return inputs.at(-1)!;
  };
  const [gq, gk, gv] = [q, k, v].map(up) as [GpuTensor, GpuTensor, GpuTensor];
  const outs: GpuTensor[] = [];
  for (const [i, window] of [Infinity, 2].entries()) {
    outs.push(
      G.lowrankAttention(g, {
        q: gq,
        k: gk,
        v: gv,
        BH,
        Tq: L,
        Tk: L,
        D,
        Dv,
        scale,
        sizes,
        window,
        table,
        beta,
        exactRanges: ranges[i]!,
      }),
    );
  }
  outs.push(
    G.lowrankAttention(g, {
      q: gq,
      k: gk,
      v: gv,
      BH,
      Tq: L,
      Tk: L,
      D,
      Dv,
      scale,
      sizes: null,
      window: Infinity,
      table,
      beta,
      exactRanges: full,
    }),
  );
  outs.push(G.attention(g, { q: gq, k: gk, v: gv, BH, Tq: L, Tk: L, D, Dv, scale, ranges: ranges[2]! }));
  const st1 = G.lowrankState(g, { k: gk, v: gv, prev: null, BH, T: L, D, Dv, table, keyNorm, what: "s1" });
  const st2 = G.lowrankState(g, { k: gq, v: gv, prev: st1, BH, T: L, D, Dv, table, keyNorm: 1e9, what: "s2" });
  outs.push(
    st1,
    st2,
    G.lowrankRead(g, { q: gk, state: st2, BH, T: L, D, Dv, scale, table, beta: 1e9, keyNorm: 1e-9, what: "r" }),
  );
  const x = up(randomF32(2 * 3 * 7 * 5, 4));
  outs.push(
    G.conv2d(g, {
      x,
      B: 2,
      Ci: 3,
      H: 7,
      W: 5,
      w: up(randomF32(9 * 3 * 3 * 3, 5)),
      Co: 9,
      kh: 3,
      kw: 3,
      b: up(randomF32(9, 6)),
      pad: 1,
    }),
  );
  outs.push(
    G.groupNorm(g, {
      x,
      w: up(randomF32(6, 7)),
      b: up(randomF32(6, 8)),
      B: 1,
      C: 6,
      S: 35,
      groups: 3,
      eps: 1e-5,
      silu: false,
    }),
  );
  outs.push(G.interpolate(g, { x, BC: 6, h: 7, w: 5, size: 9, mode: "bicubic" }));
  outs.push(G.linear(g, { x, M: 30, K: 7, w: up(randomF32(13 * 7, 9)), N: 13, b: null, act: "none" }));
  const sl = G.slice(g, { x, outer: 6, size: 35, inner: 1, start: 3, end: 20 });
  outs.push(sl, G.concat(g, { xs: [x, sl, x], outer: 6, sizes: [35, 17, 35], inner: 1 }));
  outs.push(G.gather(g, { table: x, N: 30, C: 7, idx: up(Int32Array.from([3, 0, 29, 7, 7])), what: "g" }));
  outs.push(G.permute(g, { x, shape: [2, 3, 7, 5], perm: [3, 1, 0, 2] }));
  const res: (Float32Array | Int32Array)[] = [];
  for (const t of outs) res.push(await g.read(t));
  for (const t of [...inputs, ...outs]) g.release(t);
  return res;
}

Deno.test({
  name: "pool: on a pool of NaN-filled buffers, kernels give bitwise the results of a fresh device",
  ignore,
  async fn() {
    const fresh = await Gpu.create(), g = await Gpu.create();
    try {
      const want = await partialWrites(fresh);
      await poison(g, 65536, 16);
      const before = g.bufferStats();
      const got = await partialWrites(g);
      const after = g.bufferStats();
      const f = fresh.bufferStats();
      assert.equal(after.created, before.created, "every tensor came from the poisoned pool");
      assert.equal(after.reused - before.reused, f.created + f.reused, "as many tensors as on the fresh device");
      assert.equal(got.length, want.length);
      got.forEach((r, i) => {
        assert.ok(want[i]!.every(Number.isFinite) && want[i]!.some((x) => x !== 0), `result ${i} is trivial`);
        assert.deepEqual(r, want[i], `result ${i}`);
      });
    } finally {
      fresh.destroy(), g.destroy();
    }
  },
});

Deno.test({
  name: "pool: repeated identical work creates no buffers after the first round, with equal results",
  ignore,
  async fn() {
    const g = await Gpu.create();
    try {
      const created: number[] = [];
      let first: (Float32Array | Int32Array)[] | null = null;
      for (let round = 0; round < 3; round++) {
        const got = await partialWrites(g);
        first ??= got;
        assert.deepEqual(got, first);
        created.push(g.bufferStats().created);
      }
      assert.equal(created[2], created[1], `buffers created after each round: ${created}`);
      assert.ok(g.bufferStats().reused > created[0]!, JSON.stringify(g.bufferStats()));
    } finally {
      g.destroy();
    }
  },
});

Deno.test({
  name: "pool: a zeroed tensor is cleared in order, also between dispatches of the pending batch",
  ignore,
  async fn() {
    const g = await Gpu.create();
    try {
      g.release(g.upload(new Float32Array(12).fill(7)));
      const reused = g.bufferStats().reused;
      const z0 = g.tensor(12, "f32", true);
      assert.equal(g.bufferStats().reused, reused + 1);
      assert.deepEqual(await g.read(z0), new Float32Array(12));
      // y is read by u, released, and its buffer handed to z: the clear must run after u's dispatch.
      const x = g.upload(Float32Array.from({ length: 12 }, (_, i) => i + 1));
      const y = G.scalar(g, { x, fn: "add", value: 5 }), u = G.scalar(g, { x: y, fn: "mul", value: 2 });
      g.release(y);
      const z = g.tensor(12, "f32", true);
      assert.equal(z.buffer, y.buffer, "z reuses y's buffer within the batch");
      const w = G.binary(g, { a: z, b: x, fn: "add", shape: [12], aStrides: [1], bStrides: [1] });
      assert.deepEqual(await g.read(u), Float32Array.from({ length: 12 }, (_, i) => (i + 6) * 2));
      assert.deepEqual(await g.read(z), new Float32Array(12));
      assert.deepEqual(await g.read(w), await g.read(x));
    } finally {
      g.destroy();
    }
  },
});

Deno.test({
  name: "pool: an upload never takes a buffer that a pending dispatch still reads",
  ignore,
  async fn() {
    const g = await Gpu.create();
    try {
      const a = g.upload(new Float32Array([1, 2, 3, 4]));
      const out = G.scalar(g, { x: a, fn: "add", value: 10 }); // pending: reads a
      g.release(a);
      const b = g.upload(new Float32Array([100, 200, 300, 400]));
      assert.notEqual(b.buffer, a.buffer);
      assert.deepEqual(await g.read(out), new Float32Array([11, 12, 13, 14]));
      assert.deepEqual(await g.read(b), new Float32Array([100, 200, 300, 400]));
      // Once the batch is submitted, a's buffer serves uploads.
      const c = g.upload(new Float32Array([5, 6, 7, 8]));
      assert.equal(c.buffer, a.buffer);
      assert.deepEqual(await g.read(c), new Float32Array([5, 6, 7, 8]));
    } finally {
      g.destroy();
    }
  },
});

Deno.test({
  name: "pool: trimmed to poolLimit, oldest first; releasing a tensor twice pools it once",
  ignore,
  async fn() {
    const g = await Gpu.create();
    try {
      g.poolLimit = 1024;
      const ts = Array.from({ length: 6 }, () => g.tensor(64)); // 256 bytes each
      ts.forEach((t) => g.release(t));
      let s = g.bufferStats();
      assert.deepEqual([s.pooled, s.pooledBytes, s.trimmed], [4, 1024, 2]);
      assert.equal(g.tensor(64).buffer, ts[5]!.buffer, "most recently released first");
      g.poolLimit = 2 ** 20;
      const t = g.tensor(100);
      g.release(t);
      g.release(t);
      s = g.bufferStats();
      assert.equal(s.pooled, 4);
      assert.notEqual(g.tensor(100).buffer, g.tensor(100).buffer);
    } finally {
      g.destroy();
    }
  },
});

/** A webgpu model whose device is kept for its buffer statistics. */
async function gpuModel(module: ModelModule, files: Parameters<typeof bindModel>[1]) {
  const cls = module.Gpu as { create(): Promise<Device> };
  const create = cls.create;
  let device: Gpu | undefined;
  cls.create = async () => (device = await create.call(cls) as unknown as Gpu);
  const model = bindModel(module, files);
  await model.device();
  cls.create = create;
  return { model, device: device! };
}

/** Runs forward and decode, keeping outputs on the device, then reads and releases them. */
async function forwardAndDecode(model: LoadedModel, meta: { tokens: number; vocab: number }, seed: number) {
  const dev = model.tensors;
  const idx = Int32Array.from({ length: 2 * meta.tokens }, (_, i) => (i * 31 + seed * 7) % meta.vocab);
  const inputs = {
    labels: { data: Int32Array.from([seed % 4, 3 - seed % 4]), shape: [2] },
    idx_BL: { data: idx, shape: [2, meta.tokens] },
  };
  const fwd = model.module.info.entries.forward!.outputs.map((o) => o.name);
  const f = await model.run("forward", inputs, { keep: fwd });
  const fhat = { data: randomF32(2 * 4 * 16 * 16, seed), shape: [2, 4, 16, 16] };
  const d = await model.run("decode", { fhat }, { keep: ["img"] });
  const out = [];
  for (const t of [...Object.values(f.outputs), ...Object.values(d.outputs)]) {
    out.push((await dev.read(t)).data);
    await dev.release(t);
  }
  return out;
}

Deno.test({
  name: "pool: warm entries create no buffers and match a fresh device",
  ignore,
  async fn() {
    const spec = "tests/specs/paper_small.var.ts";
    const module = await importModel((await compile(spec, { target: "webgpu" })).emitted.bundle);
    const files = { var: randomCheckpoint(module, "var", 8), vae: randomCheckpoint(module, "vae", 9) };
    const meta = module.info.meta as { tokens: number; vocab: number };
    const { model, device } = await gpuModel(module, files);
    try {
      // Weights upload on first use, into pooled buffers where sizes fit: the second run refills the pool.
      for (const seed of [1, 2]) await forwardAndDecode(model, meta, seed);
      const warm = device.bufferStats();
      const b = await forwardAndDecode(model, meta, 3);
      const after = device.bufferStats();
      assert.equal(after.created, warm.created, JSON.stringify({ warm, after }));
      assert.ok(after.reused - warm.reused > 100, JSON.stringify({ warm, after }));
      const fresh = await gpuModel(module, files);
      const a = await forwardAndDecode(fresh.model, meta, 3);
      fresh.device.destroy();
      assert.deepEqual(b, a);
    } finally {
      device.destroy();
    }
  },
});
