/**
 * @file The device sampler (`runtime/webgpu/sample.ts`) against the host's `guide` and `sampleRows` on
 * random rows, with ties, for every top-k / top-p regime. Skipped, saying why, where no WebGPU
 * adapter exists.
 *
 * The device sums exp(x − max) in float32, the host in float64, so a token may differ only where the
 * host's decision (a cumulative sum against (1 − p)·total or u·total) was within float32 rounding of
 * the boundary. Relative to the total, that rounding is at most: (V − 1)·2⁻²⁴ for a float32 sum of ≤ V
 * non-negative terms in any order; (3 + 3R)·2⁻²⁴ for each term exp(x − max) with R the row's range (the
 * float32 subtraction, and WGSL's 3 + 2|x| ulp for exp); 4·2⁻²⁴ for rounding u and 1 − p to float32
 * and the products with the total. Both sides of a comparison carry it: TOL = 2·(V + 3R + 6)·2⁻²⁴.
 */
import assert from "node:assert/strict";
import { findAdapter } from "../../cli/compile.ts";
import { Generator, guide, sampleRows } from "../sample.ts";
import { Gpu } from "./device.ts";
import { sampleOnDevice } from "./sample.ts";

const adapter = await findAdapter();
if (!adapter) console.log("webgpu sampler tests skipped: navigator.gpu gives no adapter on this machine");

/** Normal deviates from a seeded generator (Box–Muller). */
function normals(gen: Generator, n: number): Float32Array {
  return Float32Array.from(
    { length: n },
    () => Math.sqrt(-2 * Math.log(1 - gen.uniform())) * Math.cos(2 * Math.PI * gen.uniform()),
  );
}

/**
 * Logits [2·rows, V]: odd rows continuous (σ = 3), even rows on a grid of halves in [−4, 4] (many ties,
 * and guidance with t ∈ {0, 1.5} stays exact on them).
 */
function randomLogits(gen: Generator, rows: number, V: number): Float32Array {
  const x = normals(gen, 2 * rows * V);
  for (let i = 0; i < x.length; i++) {
    const r = Math.floor(i / V) % rows;
    x[i] = r % 2 === 0 ? Math.max(-4, Math.min(4, Math.round(x[i]! * 2) / 2)) : x[i]! * 3;
  }
  return x;
}

/**
 * The smallest distance, relative to the total, between one of the host's float64 decisions on `row`
 * (as `sampleRows` takes them) and its boundary.
 */
function margin(row: Float32Array, topK: number, topP: number, u: number): number {
  const V = row.length;
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => row[a]! - row[b]! || a - b);
  const kth = topK > 0 && topK < V ? row[order[V - topK]!]! : -Infinity;
  let first = 0;
  while (first < V - 1 && row[order[first]!]! < kth) first++;
  const max = row[order[V - 1]!]!;
  const e = (j: number) => Math.exp(row[order[j]!]! - max);
  let m = Infinity;
  if (topP > 0) {
    let total = 0;
    for (let j = first; j < V; j++) total += e(j);
    let cum = 0, cut = first;
    for (let j = first; j < V - 1; j++) {
      cum += e(j) / total;
      m = Math.min(m, Math.abs(cum - (1 - topP)));
      if (cum <= 1 - topP) cut = j + 1;
    }
    first = cut;
  }
  let total = 0;
  for (let j = first; j < V; j++) total += e(j);
  let d = 0;
  for (let j = V - 1; j >= first; j--) m = Math.min(m, Math.abs((d += e(j)) - u * total) / total);
  return m;
}

Deno.test({
  name: "webgpu sampler: the host's tokens on random rows (greedy exactly, others up to float32 boundary cases)",
  ignore: !adapter,
  async fn() {
    const gpu = await Gpu.create();
    const data = new Generator(1);
    let rowsChecked = 0, nearBoundary = 0;
    for (const [V, B, T] of [[37, 16, 6], [300, 8, 6], [4096, 2, 4]] as const) {
      const rows = B * T;
      for (const topK of [0, 1, 5, V]) {
        for (const topP of [0, 0.5, 0.96]) {
          const t = (topK + Math.round(topP * 2)) % 2 === 0 ? 0 : 1.5;
          const logits = randomLogits(data, rows, V);
          const seed = rowsChecked;
          const uniforms = Array.from({ length: rows }, ((g) => () => g.uniform())(new Generator(seed)));
          const d = await sampleOnDevice(gpu, gpu.upload(logits), { B, T, V, t, topK, topP, uniforms, guided: true });
          gpu.release(d.tokens);
          const g = guide(logits, B, T * V, t);
          const differ = g.findIndex((x, i) => !Object.is(x, d.guided![i]) && !(x === 0 && d.guided![i] === 0));
          assert.equal(
            differ,
            -1,
            `guided logit ${differ}: ${g[differ]} on the host, ${d.guided![differ]} on the device`,
          );
          const want = sampleRows(g, V, { topK, topP }, new Generator(seed));
          for (let r = 0; r < rows; r++) {
            rowsChecked++;
            if (d.host[r] === want[r]) continue;
            const row = g.subarray(r * V, r * V + V);
            const where = `V ${V} top-k ${topK} top-p ${topP} row ${r}: device ${d.host[r]}, host ${want[r]}`;
            assert.notEqual(topK, 1, `greedy ${where}`);
            const R = Math.max(...row) - Math.min(...row);
            const tol = 2 * (V + 3 * R + 6) * 2 ** -24, m = margin(row, topK, topP, uniforms[r]!);
            assert.ok(m <= tol, `${where}, ${m.toExponential(2)} from a boundary > ${tol.toExponential(2)}`);
            nearBoundary++;
          }
        }
      }
    }
    console.log(`${rowsChecked} rows, ${nearBoundary} differing within float32 rounding of a boundary`);
    gpu.destroy();
  },
});

Deno.test({
  name: "webgpu sampler: a non-finite guided logit is the host's NonFiniteLogitsError",
  ignore: !adapter,
  async fn() {
    const gpu = await Gpu.create();
    const B = 2, T = 3, V = 37;
    const logits = randomLogits(new Generator(2), B * T, V);
    logits[(B * T + 4) * V + 7] = NaN; // unconditional row 4
    logits[5 * V + 2] = Infinity; // conditional row 5 (later)
    const o = { topK: 0, topP: 0.9 };
    let message = "";
    try {
      sampleRows(guide(logits, B, T * V, 1), V, o, new Generator(0));
    } catch (e) {
      message = (e as Error).message;
    }
    assert.match(message, /^Guided logit NaN at token 4, class 7: /);
    const uniforms = new Array(B * T).fill(0.5);
    await assert.rejects(
      sampleOnDevice(gpu, gpu.upload(logits), { B, T, V, t: 1, ...o, uniforms }),
      (e: Error) => e.name === "NonFiniteLogitsError" && e.message === message,
    );
    gpu.destroy();
  },
});
