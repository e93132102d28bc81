/**
 * @file Exact attention on WebGPU, flash-attention style: a workgroup takes QB = 64 consecutive queries
 * of one head (one query row per invocation, q and the output accumulator in registers) and walks the
 * union of their key ranges in tiles of BK keys. Each tile of K [BK, D] and V [BK, Dv] is loaded once
 * into workgroup memory by all 64 invocations (contiguous, vec4 when the row length allows), so K/V are
 * read from global memory once per query block instead of once per query. Every invocation then folds
 * the keys of the tile inside its own range [lo, hi) into its online softmax (running max; the rescale
 * branch is taken only when the max grows, O(log n) times per row on typical logits). VAR's block-causal
 * ranges are contiguous per scale, so the invocations of a block mostly walk the same keys in lockstep.
 *
 * A per-tile max (logits of the tile in a register array, one rescale per tile) was measured against
 * this form on llvmpipe: no faster there, and its fully unrolled tile took minutes to JIT-compile.
 */
import type { KeyRanges } from "../kernels.ts";
import type { Gpu, GpuArgs as Args, GpuTensor } from "./device.ts";
import { type Binding, f32Word, kernelSource, run, source, WG } from "./wgsl.ts";

/** Queries per workgroup: one per invocation. */
const QB = WG;

/**
 * Keys per tile for head dims D and Dv within `bytes` of workgroup memory (the K and V tiles, float32):
 * ⌊bytes / 4(D + Dv)⌋: D = Dv = 64 with the default 16 KiB gives 32 (two barriers per tile).
 */
export function keyTile(D: number, Dv: number, bytes: number): number {
  const bk = Math.floor(bytes / (4 * (D + Dv)));
  if (bk < 1) {
    throw new RangeError(
      `attention: one key of D = ${D} and Dv = ${Dv} needs ${4 * (D + Dv)} bytes of workgroup memory, ` +
        `more than the device's maxComputeWorkgroupStorageSize of ${bytes}`,
    );
  }
  return bk;
}

/**
 * lo [n], hi [n], then per block of QB queries the union [min lo, max hi) of its ranges (pairs; [0, 0)
 * when every range is empty). Uploaded once per object (the object must not be mutated afterwards).
 */
function rangesTensor(gpu: Gpu, ranges: KeyRanges): GpuTensor {
  return gpu.constant(ranges, () => {
    const { lo, hi } = ranges, n = lo.length, blocks = Math.ceil(n / QB);
    const packed = new Int32Array(2 * n + 2 * blocks);
    packed.set(lo);
    packed.set(hi, n);
    for (let b = 0; b < blocks; b++) {
      let a = Infinity, z = -Infinity;
      for (let i = b * QB; i < Math.min(n, (b + 1) * QB); i++) {
        if (lo[i]! < hi[i]!) a = Math.min(a, lo[i]!), z = Math.max(z, hi[i]!);
      }
      if (a < z) packed[2 * n + 2 * b] = a, packed[2 * n + 2 * b + 1] = z;
    }
    return packed;
  });
}

/** Bindings of both forms: Q, K rows of type TK; V, O rows of type TV; the ranges; with `masked` the head mask. */
function bindings(TK: string, TV: string, masked: boolean): Binding[] {
  return [
    ["Q", "read", TK],
    ["K", "read", TK],
    ["V", "read", TV],
    ["R", "read", "i32"],
    ["O", "read_write", TV],
    ...(masked ? [["Mk", "read", "u32"] as const] : []),
  ];
}

/**
 * WGSL folding logit `x` and value row `v` (indexed by d, V4 elements) into the online softmax: running
 * max `mx` (rescaling `sum` and `acc` only when it grows), `sum`, and the accumulator `acc`.
 */
function fold(V4: number, v: string): string {
  return `if (x > mx) {
      let c = exp(mx - x);
      sum *= c;
      for (var d = 0u; d < ${V4}u; d++) { acc[d] *= c; }
      mx = x;
    }
    let p = exp(x - mx);
    sum += p;
    for (var d = 0u; d < ${V4}u; d++) { acc[d] += p * ${v}; }`;
}

/**
 * Kernel for head dims D, Dv and key tile BK; K/Q rows are vec4 when D % 4 = 0, V/O rows when Dv % 4 = 0.
 * With `masked`, binding Mk [BH] u32 skips heads whose word is 0. Parameters: BH, Tq, Tk, scale, n (the
 * ranges' length), query blocks per head.
 */
function attentionSource(D: number, Dv: number, BK: number, masked: boolean): string {
  return source(`attention:${D}:${Dv}:${BK}:${masked}`, () => {
    const kw = D % 4 === 0 ? 4 : 1, vw = Dv % 4 === 0 ? 4 : 1;
    const TK = kw === 4 ? "vec4<f32>" : "f32", TV = vw === 4 ? "vec4<f32>" : "f32";
    const D4 = D / kw, V4 = Dv / vw;
    const dot = kw === 4 ? "dot(q[d], Ks[kr + d])" : "q[d] * Ks[kr + d]";
    // Everything a barrier depends on (wg, bh, the block's key union) is workgroup-uniform: parameters
    // and read-only storage at uniform indices. Queries past Tq get an empty range but still load tiles.
    return kernelSource(
      bindings(TK, TV, masked),
      `  let BH = pu(0u); let Tq = pu(1u); let Tk = pu(2u); let scale = pf(3u); let n = pu(4u); let nb = pu(5u);
  if (wg >= BH * nb) { return; }
  let bh = wg / nb;
  let blk = wg - bh * nb;
  ${masked ? "if (Mk[bh] == 0u) { return; }" : ""}
  let blo = u32(R[2u * n + 2u * blk]);
  let bhi = u32(R[2u * n + 2u * blk + 1u]);
  let i = blk * ${QB}u + lid;
  let live = i < Tq;
  let row = bh * Tq + min(i, Tq - 1u);
  var lo = 0u;
  var hi = 0u;
  if (live) { lo = u32(R[i]); hi = u32(R[n + i]); }
  var q: array<${TK}, ${D4}>;
  for (var d = 0u; d < ${D4}u; d++) { q[d] = scale * Q[row * ${D4}u + d]; }
  var acc: array<${TV}, ${V4}>;
  var mx = -3.0e38;
  var sum = 0.0;
  for (var t0 = blo; t0 < bhi; t0 += ${BK}u) {
    let nk = min(${BK}u, bhi - t0);
    let kb = (bh * Tk + t0) * ${D4}u;
    for (var e = lid; e < nk * ${D4}u; e += ${QB}u) { Ks[e] = K[kb + e]; }
    let vb = (bh * Tk + t0) * ${V4}u;
    for (var e = lid; e < nk * ${V4}u; e += ${QB}u) { Vs[e] = V[vb + e]; }
    workgroupBarrier();
    for (var j = max(lo, t0); j < min(hi, t0 + ${BK}u); j++) {
      let kr = (j - t0) * ${D4}u;
      var x = 0.0;
      for (var d = 0u; d < ${D4}u; d++) { x += ${dot}; }
      let vr = (j - t0) * ${V4}u;
      ${fold(V4, "Vs[vr + d]")}
    }
    workgroupBarrier();
  }
  if (live) {
    for (var d = 0u; d < ${V4}u; d++) { O[row * ${V4}u + d] = acc[d] / sum; }
  }`,
      `var<workgroup> Ks: array<${TK}, ${BK * D4}>;\nvar<workgroup> Vs: array<${TV}, ${BK * V4}>;\n`,
    );
  });
}

/** vec4 rows when both head dims allow. */
function width(D: number, Dv: number): 1 | 4 {
  return D % 4 === 0 && Dv % 4 === 0 ? 4 : 1;
}

/**
 * Row form for CPU adapters: one invocation per (head, query row) walks its own key range from global
 * memory (no workgroup memory or barriers, which cost there). Same parameters as `attentionSource`
 * minus the block count; reads only lo/hi of the ranges tensor.
 */
function rowSource(D: number, Dv: number, masked: boolean): string {
  return source(`attention-rows:${D}:${Dv}:${masked}`, () => {
    const vw = width(D, Dv), T = vw === 4 ? "vec4<f32>" : "f32", D4 = D / vw, V4 = Dv / vw;
    const mul = (a: string, b: string) => (vw === 4 ? `dot(${a}, ${b})` : `${a} * ${b}`);
    return kernelSource(
      bindings(T, T, masked),
      `  let Tq = pu(1u); let Tk = pu(2u); let scale = pf(3u);
  if (gid >= pu(0u) * Tq) { return; }
  let bh = gid / Tq;
  let i = gid - bh * Tq;
  ${masked ? "if (Mk[bh] == 0u) { return; }" : ""}
  var q: array<${T}, ${D4}>;
  let qb = gid * ${D4}u;
  for (var d = 0u; d < ${D4}u; d++) { q[d] = Q[qb + d]; }
  var acc: array<${T}, ${V4}>;
  var mx = -3.0e38;
  var sum = 0.0;
  let lo = u32(R[i]);
  let hi = u32(R[pu(4u) + i]);
  for (var j = lo; j < hi; j++) {
    let kb = (bh * Tk + j) * ${D4}u;
    var x = 0.0;
    for (var d = 0u; d < ${D4}u; d++) { x += ${mul("q[d]", "K[kb + d]")}; }
    x *= scale;
    let vb = (bh * Tk + j) * ${V4}u;
    ${fold(V4, "V[vb + d]")}
  }
  let ob = gid * ${V4}u;
  for (var d = 0u; d < ${V4}u; d++) { O[ob + d] = acc[d] / sum; }`,
    );
  });
}

/**
 * Records exact attention into `out` [BH, Tq, Dv]; with `mask` ([BH] u32), only heads whose word is
 * non-zero (the other heads of `out` are left as they are). One workgroup per (head, block of 64 queries).
 */
export function attentionInto(
  gpu: Gpu,
  q: GpuTensor,
  k: GpuTensor,
  v: GpuTensor,
  BH: number,
  Tq: number,
  Tk: number,
  D: number,
  Dv: number,
  scale: number,
  ranges: KeyRanges,
  out: GpuTensor,
  mask: GpuTensor | null,
): void {
  const tensors = [q, k, v, rangesTensor(gpu, ranges), out];
  if (mask) tensors.push(mask);
  if (!gpu.tiling) {
    const words = [BH, Tq, Tk, f32Word(scale), ranges.lo.length];
    run(gpu, "attention", rowSource(D, Dv, mask !== null), words, tensors, BH * Tq);
    return;
  }
  const BK = keyTile(D, Dv, gpu.limits.maxComputeWorkgroupStorageSize);
  const nb = Math.ceil(Tq / QB);
  const words = [BH, Tq, Tk, f32Word(scale), ranges.lo.length, nb];
  run(gpu, "attention", attentionSource(D, Dv, BK, mask !== null), words, tensors, BH * nb * QB);
}

/**
 * q [BH, Tq, D], k [BH, Tk, D], v [BH, Tk, Dv] -> [BH, Tq, Dv]: softmax(scale·q kᵀ) v over each query's
 * key range [lo[i], hi[i]) (`ranges` of length ≥ Tq), float32, with an online softmax over key tiles.
 */
export function attention(gpu: Gpu, { q, k, v, BH, Tq, Tk, D, Dv, scale, ranges }: Args<"attention">): GpuTensor {
  const out = gpu.tensor(BH * Tq * Dv);
  attentionInto(gpu, q, k, v, BH, Tq, Tk, D, Dv, scale, ranges, out, null);
  return out;
}
