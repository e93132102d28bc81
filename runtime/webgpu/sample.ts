/**
 * @file Classifier-free guidance and top-k / top-p sampling on the device, the same decisions as
 * `guide` then `sampleRows` (`runtime/sample.ts`) with the host's uniforms: only the tokens come back.
 *
 * One workgroup of 64 invocations per row of V logits (each holds ⌈V/64⌉ of them). The row is never
 * sorted: each threshold of the host's ascending (value, index) order is a position (key, index), with
 * the order-preserving u32 key of the value, found four bits per round from the top by one workgroup
 * reduction of 16 digit sums (counts or float32 sums of exp(x − max)):
 * - top-k: the largest key with at least k values at or above it (ties kept);
 * - top-p: the largest position whose ascending sum below it is ≤ (1 − p)·total; the elements below it
 *   are dropped, the largest never;
 * - the draw: the largest position whose descending sum from the top exceeds u·total, the element where
 *   the host's walk from the largest value down stops.
 * Sums are float32 (the host's float64), so a draw can differ only where the host's sum was within
 * float32 rounding of a boundary. The digit sums live in vec4s indexed only by constants, which keeps
 * the kernel quick to compile on llvmpipe (seconds, not the minute an indexed array costs).
 */
import { checkFiniteLogits, type SampleOptions } from "../sample.ts";
import type { Gpu, GpuTensor } from "./device.ts";
import { f32Word, source } from "./wgsl.ts";

/** Invocations per row. */
const WGS = 64;

/** What the sampler needs besides the logits: sizes, guidance ratio t, top-k / top-p, one uniform per row. */
export interface DeviceSampleOptions extends SampleOptions {
  readonly B: number;
  readonly T: number;
  readonly V: number;
  readonly t: number;
  /** [B·T] in [0, 1), in row order (one `Generator.uniform()` per row, as `sampleRows` draws them). */
  readonly uniforms: ArrayLike<number>;
  /** Also read back the guided logits [B, T, V]. */
  readonly guided?: boolean;
}

/** The tokens [B·T] on the device and their host copy; the guided logits if asked. */
export interface DeviceSample {
  readonly tokens: GpuTensor;
  readonly host: Int32Array;
  readonly guided?: Float32Array;
}

/**
 * Guides logits [2B, T, V] (conditional rows first; overwritten: the guided logits replace the first
 * half) and samples one token per row. Consumes `logits`; the caller releases `tokens`.
 * NonFiniteLogitsError (the host's message) when a guided logit is NaN or infinite.
 */
export async function sampleOnDevice(gpu: Gpu, logits: GpuTensor, o: DeviceSampleOptions): Promise<DeviceSample> {
  const { B, T, V } = o, rows = B * T;
  if (logits.length !== 2 * rows * V) {
    throw new RangeError(`sampleOnDevice: logits have ${logits.length} elements, expected 2·${B}·${T}·${V}`);
  }
  // float32 uniforms stay below 1, as the host's (a u that rounds up to 1 would pass every boundary).
  const below1 = 1 - 2 ** -24;
  const u = gpu.upload(Float32Array.from({ length: rows }, (_, r) => Math.min(Math.fround(o.uniforms[r]!), below1)));
  const tokens = gpu.tensor(rows, "i32");
  const topK = o.topK > 0 && o.topK < V ? o.topK : 0;
  const words = [
    V,
    rows,
    f32Word(1 + o.t),
    f32Word(o.t),
    topK,
    o.topP > 0 ? 1 : 0,
    f32Word(1 - o.topP),
    Math.ceil((32 - Math.clz32(V)) / 4),
  ];
  const E = Math.ceil(V / WGS);
  gpu.dispatch("sampleRows", samplerSource(E), words, [logits, u, tokens], rows);
  gpu.release(u);
  let host: Int32Array, guided: Float32Array | undefined;
  try {
    host = await gpu.read(tokens) as Int32Array;
    if (o.guided || host.some((x) => x < 0)) {
      guided = (await gpu.read(logits) as Float32Array).slice(0, rows * V);
      checkFiniteLogits(guided, V);
    }
  } catch (e) {
    gpu.release(tokens);
    throw e;
  } finally {
    gpu.release(logits);
  }
  return { tokens, host, ...(o.guided ? { guided } : {}) };
}

/** Digits from the top: 15, 14, …, 0. */
const digits = Array.from({ length: 16 }, (_, j) => 15 - j);

/** WGSL: digit d's sum in the reduced `b` (4 vec4). */
const digit = (d: number) => `b[${d >> 2}][${d & 3}]`;

/** WGSL: one step of the walk over the digit sums (unrolled: constant indices keep them in registers). */
const walk = (d: number) =>
  `    { let prev = acc; acc += ${digit(d)}; if (${digit(d)} > 0.0) { low = ${d}u; lowAbove = prev; } ` +
  `if (pick == 16u && passes(stage, acc, total, limit, ut, kf)) { pick = ${d}u; above = prev; } }`;

/** The sampler for ⌈V/64⌉ = E logits per invocation. */
function samplerSource(E: number): string {
  return source(`sampleRows:${E}`, () =>
    `struct Params { v: array<vec4<u32>, 16> }
@group(0) @binding(0) var<uniform> P: Params;
fn pu(i: u32) -> u32 { return P.v[i / 4u][i % 4u]; }
fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }
@group(0) @binding(1) var<storage, read_write> L: array<f32>; // [2·rows, V] logits -> guided in the first half
@group(0) @binding(2) var<storage, read> U: array<f32>; // [rows] uniforms
@group(0) @binding(3) var<storage, read_write> O: array<i32>; // [rows] tokens, −1 for a non-finite row

// Reductions in two barriers (the next call's first barrier orders its writes after this call's reads);
// every invocation gets the same value.
var<workgroup> part: array<vec4<f32>, ${4 * WGS}>;
var<workgroup> sums: array<vec4<f32>, 4>;
var<workgroup> partU: array<vec2<u32>, ${WGS}>;
var<workgroup> maxU: array<vec2<u32>, 8>;

/** Lane-wise sums of 16 values (4 vec4) over the workgroup. */
fn reduce16(b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>, lid: u32) -> array<vec4<f32>, 4> {
  part[4u * lid] = b0;
  part[4u * lid + 1u] = b1;
  part[4u * lid + 2u] = b2;
  part[4u * lid + 3u] = b3;
  workgroupBarrier();
  if (lid < 4u) {
    var s = vec4<f32>(0.0);
    for (var j = 0u; j < ${WGS}u; j++) { s += part[4u * j + lid]; }
    sums[lid] = s;
  }
  workgroupBarrier();
  return sums;
}

/** Lane-wise maxima of two values over the workgroup. */
fn reduceMax(x: vec2<u32>, lid: u32) -> vec2<u32> {
  partU[lid] = x;
  workgroupBarrier();
  if (lid < 8u) {
    var m = vec2<u32>(0u);
    for (var j = 0u; j < ${WGS / 8}u; j++) { m = max(m, partU[lid * ${WGS / 8}u + j]); }
    maxU[lid] = m;
  }
  workgroupBarrier();
  var m = vec2<u32>(0u);
  for (var j = 0u; j < 8u; j++) { m = max(m, maxU[j]); }
  return m;
}

/** The search predicate of a weight at or above a position (see main). */
fn passes(stage: u32, acc: f32, total: f32, limit: f32, ut: f32, kf: f32) -> bool {
  if (stage == 0u) { return acc >= kf; }
  if (stage == 1u) { return total - acc <= limit && acc > 0.0; }
  return acc > ut;
}

/** Order-preserving key: a < b iff key(a) < key(b) (main canonicalises −0 to +0 first). */
fn key(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn unkey(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

@compute @workgroup_size(${WGS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  let V = pu(0u);
  let rows = pu(1u);
  if (r >= rows) { return; }
  let nq = pu(7u); // index digits: 16^nq > V
  var ks: array<u32, ${E}>; // keys (0 past the row's end: below every finite value's key)
  var es: array<f32, ${E}>; // exp(x − max) of the still-kept logits, else 0
  var bad = 0u;
  var kmax = 0u;
  for (var e = 0u; e < ${E}u; e++) {
    let i = lid + e * ${WGS}u;
    ks[e] = 0u;
    if (i < V) {
      var g = pf(2u) * L[r * V + i] - pf(3u) * L[(rows + r) * V + i];
      g = select(g, 0.0, g == 0.0);
      L[r * V + i] = g;
      bad = select(bad, 1u, (bitcast<u32>(g) & 0x7f800000u) == 0x7f800000u);
      ks[e] = key(g);
      kmax = max(kmax, ks[e]);
    }
  }
  let bk = reduceMax(vec2<u32>(bad, kmax), lid);
  let m = unkey(bk.y);
  let K = pu(4u);
  for (var e = 0u; e < ${E}u; e++) {
    es[e] = select(0.0, exp(unkey(ks[e]) - m), lid + e * ${WGS}u < V && (K != 1u || ks[e] == bk.y));
  }

  // Three searches for the largest position c = (key, index) at which a predicate of the weight at or
  // above c holds, four bits per round from the key's top digit down (the index only in 1 and 2), each
  // round one reduction of the 16 digit sums in the window fixed so far:
  // 0. top-k for k > 1 (k = 1 keeps the maximum's ties above), counts: ≥ k (keep key ≥ c's key, ties kept);
  // 1. top-p, exp(x − max) of the kept: the sum below c is ≤ (1 − p)·total and c has weight (the largest
  //    is never dropped); drop the elements below c;
  // 2. the draw: the sum exceeds u·total (where the walk from the top down stops); c is the token.
  // Should rounding leave no digit true, the window's lowest weighted digit is taken (the host's walk
  // ending there), so a weighted search never ends on a weightless element.
  var stage = select(select(2u, 1u, pu(5u) != 0u), 0u, K > 1u);
  let kf = f32(K);
  var q = 0u;
  var cK = 0u;
  var cI = 0u;
  var above = 0.0; // weight above the window
  var total = 0.0;
  var limit = 0.0;
  var ut = 0.0;
  loop {
    let onIndex = q >= 8u;
    let shift = select(28u - 4u * q, 4u * (nq - 1u - (q - 8u)), onIndex);
    var b0 = vec4<f32>(0.0);
    var b1 = vec4<f32>(0.0);
    var b2 = vec4<f32>(0.0);
    var b3 = vec4<f32>(0.0);
    for (var e = 0u; e < ${E}u; e++) {
      let i = lid + e * ${WGS}u;
      let x = select(ks[e], i, onIndex);
      if (((x ^ select(cK, cI, onIndex)) >> shift) < 16u && (!onIndex || ks[e] == cK)) {
        let w = vec4<f32>(select(es[e], select(0.0, 1.0, i < V), stage == 0u));
        let dg = vec4<u32>((x >> shift) & 15u);
        b0 += select(vec4<f32>(0.0), w, dg == vec4<u32>(0u, 1u, 2u, 3u));
        b1 += select(vec4<f32>(0.0), w, dg == vec4<u32>(4u, 5u, 6u, 7u));
        b2 += select(vec4<f32>(0.0), w, dg == vec4<u32>(8u, 9u, 10u, 11u));
        b3 += select(vec4<f32>(0.0), w, dg == vec4<u32>(12u, 13u, 14u, 15u));
      }
    }
    let b = reduce16(b0, b1, b2, b3, lid);
    if (q == 0u) {
      total = 0.0;
      ${digits.map((d) => `total += ${digit(d)};`).join(" ")}
      limit = pf(6u) * total;
      ut = U[r] * total;
      ut = select(0.0, ut, ut < total); // u·total rounded up to the total: the largest, as the host's walk
    }
    // From the top digit down: the first whose weight at or above passes (else the lowest weighted one).
    var acc = above;
    var pick = 16u;
    var low = 0u;
    var lowAbove = above;
${digits.map(walk).join("\n")}
    if (pick == 16u) { pick = low; above = lowAbove; }
    if (onIndex) { cI |= pick << shift; } else { cK |= pick << shift; }
    q++;
    if (q == select(8u + nq, 8u, stage == 0u)) {
      for (var e = 0u; e < ${E}u; e++) {
        let i = lid + e * ${WGS}u;
        let drop = select(ks[e] < cK || (ks[e] == cK && i < cI), ks[e] < cK, stage == 0u);
        es[e] = select(es[e], 0.0, drop);
      }
      if (stage == 2u) { break; }
      stage = select(2u, 1u, stage == 0u && pu(5u) != 0u);
      q = 0u;
      cK = 0u;
      cI = 0u;
      above = 0.0;
    }
  }
  if (lid == 0u) { O[r] = select(i32(cI), -1, bk.x != 0u); }
}
`);
}
