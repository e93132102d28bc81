/**
 * @file WebGPU kernels of the kernel contract (`../kernels.ts`): the names and argument records of
 * `runtime/js/kernels.ts` and `runtime/js/lowrank.ts`, after the device (`G.linear(gpu, { x, M, … })`):
 * every tensor is a GpuTensor, sizes and shapes stay numbers. Each call records one or a few
 * dispatches into the device's pending batch and returns the result tensor at once.
 *
 * Layouts are those of the JS kernels (row-major). Arithmetic is float32 throughout (the JS kernels
 * accumulate in float64), so results differ by float32 rounding of the sums; the tests state the
 * bounds. Run-time data checks (gather indices, non-finite values, low-rank state guards) set the
 * device's report words; `gpu.read()` turns them into GpuKernelError with the JS kernels' messages.
 * Static sizes (head dims, Dv) are baked into the WGSL of the kernels that keep per-invocation arrays;
 * batch-dependent sizes travel in the parameter block of each dispatch.
 */
import { resampleMatrix } from "../host_constants.ts";
import type { FeatureTable } from "../js/lowrank.ts";
import { attentionInto } from "./attention.ts";
import type { Implements, Kernels, OnDevice } from "../kernels.ts";
import { gemmNT } from "./gemm.ts";
import { type Gpu, type GpuArgs as Args, GpuTensor } from "./device.ts";
import { f32Word, fixup, kernelSource, range, run, source, WG, wordF32 } from "./wgsl.ts";

export { GpuTensor };

/**
 * The kernel contract holds for this module (`G` of generated code): a kernel missing, or needing a
 * field the contract does not give, fails type checking here.
 */
export type GpuKernels = Implements<typeof import("./kernels.ts"), OnDevice<Kernels<GpuTensor>, Gpu>>;
export { fullKeyRanges, scaleKeyRanges } from "../host_constants.ts";
export type { KeyRanges } from "../kernels.ts";
export { type FeatureTable, featureTable } from "../js/lowrank.ts";

// ---------------------------------------------------------------------------------------------
// Checks

/**
 * Sets the device report if x has a NaN or infinity (`what` names the node and entry); `read()` then
 * throws GpuKernelError with the message of the JS NumericsError (first non-finite flat index).
 */
export function checkFinite(gpu: Gpu, { x, what }: Args<"checkFinite">): void {
  const code = source("checkFinite", () =>
    kernelSource(
      [["X", "read", "u32"], ["E", "read_write", "atomic<u32>"]],
      `  if (gid >= pu(0u)) { return; }
  if ((X[gid] & 0x7f800000u) == 0x7f800000u) { report(pu(1u), gid); }`,
    ));
  const n = x.length;
  const site = gpu.site((pos, bits) => {
    const scale = /^step_(\d+)/.exec(what)?.[1];
    const at = scale !== undefined ? ` (generation scale ${scale})` : "";
    return { message: `${what}${at} produced ${wordF32(bits)} at flat index ${pos} of ${n}`, kind: "numerics" };
  });
  run(gpu, "checkFinite", code, [n, site], [x, gpu.status], n);
  fixup(gpu, site, x);
}

/** table [N, C], idx [n] (i32) -> [n, C]; an index outside [0, N) is reported (message as the JS kernel's). */
export function gather(gpu: Gpu, { table, N, C, idx, what }: Args<"gather">): GpuTensor {
  const code = source("gather", () =>
    kernelSource(
      [["T", "read", "u32"], ["I", "read", "i32"], ["O", "read_write", "u32"], ["E", "read_write", "atomic<u32>"]],
      `  let C = pu(1u);
  if (gid >= pu(0u) * C) { return; }
  let i = gid / C;
  let c = gid - i * C;
  let r = I[i];
  if (r < 0 || u32(r) >= pu(2u)) {
    if (c == 0u) { report(pu(3u), i); }
    O[gid] = 0u;
    return;
  }
  O[gid] = T[u32(r) * C + c];`,
    ));
  const n = idx.length;
  const out = gpu.tensor(n * C, table.dtype);
  const site = gpu.site((pos, bits) => ({
    message: `${what}: index ${bits | 0} at position ${pos} is out of range [0, ${N})`,
    kind: "range",
  }));
  run(gpu, "gather", code, [n, C, N, site], [table, idx, out, gpu.status], n * C);
  fixup(gpu, site, idx);
  return out;
}

// ---------------------------------------------------------------------------------------------
// GEMM

export { gemmNT };

/** act(x [M, K] @ w [N, K]ᵀ (+ b [N])) -> [M, N]; the activation as its own `unary` dispatch. */
export function linear(gpu: Gpu, { x, M, K, w, N, b, act }: Args<"linear">): GpuTensor {
  const out = gpu.tensor(M * N);
  gemmNT(gpu, x, M, K, w, N, b, out);
  if (act === "none") return out;
  const y = unary(gpu, { x: out, fn: act });
  gpu.release(out);
  return y;
}

// ---------------------------------------------------------------------------------------------
// Normalisation

/**
 * LayerNorm without affine over rows of C (one invocation per row, two passes, float32); with s and
 * b, row r modulated by row ⌊r / T⌋ of each: h + h·s + b.
 */
export function layerNorm(gpu: Gpu, { x, C, eps, s, b, T }: Args<"layerNorm">): GpuTensor {
  const mod = s !== null && b !== null, name = mod ? "layerNormMod" : "layerNorm";
  const code = source(name, () =>
    kernelSource(
      [["X", "read", "f32"], ...(mod ? [["S", "read", "f32"], ["Bs", "read", "f32"]] as const : []), [
        "O",
        "read_write",
        "f32",
      ]],
      `  let C = pu(1u);
  if (gid >= pu(0u)) { return; }
  let b = gid * C;
  var mean = 0.0;
  for (var c = 0u; c < C; c++) { mean += X[b + c]; }
  mean /= f32(C);
  var v = 0.0;
  for (var c = 0u; c < C; c++) { let d = X[b + c] - mean; v += d * d; }
  let inv = 1.0 / sqrt(v / f32(C) + pf(2u));
` + (mod
        ? `  let m = (gid / pu(3u)) * C;
  for (var c = 0u; c < C; c++) { let h = (X[b + c] - mean) * inv; O[b + c] = (h + h * S[m + c]) + Bs[m + c]; }`
        : `  for (var c = 0u; c < C; c++) { O[b + c] = (X[b + c] - mean) * inv; }`),
    ));
  const out = gpu.tensor(x.length), rows = C ? x.length / C : 0;
  run(gpu, name, code, [rows, C, f32Word(eps), T], mod ? [x, s, b, out] : [x, out], rows);
  return out;
}

/** x / max(‖x‖₂, eps) over rows of D. */
export function l2Normalize(gpu: Gpu, { x, D, eps }: Args<"l2Normalize">): GpuTensor {
  const code = source("l2Normalize", () =>
    kernelSource(
      [["X", "read", "f32"], ["O", "read_write", "f32"]],
      `  let D = pu(1u);
  if (gid >= pu(0u)) { return; }
  let b = gid * D;
  var s = 0.0;
  for (var c = 0u; c < D; c++) { let v = X[b + c]; s += v * v; }
  let inv = 1.0 / max(sqrt(s), pf(2u));
  for (var c = 0u; c < D; c++) { O[b + c] = X[b + c] * inv; }`,
    ));
  const out = gpu.tensor(x.length), rows = D ? x.length / D : 0;
  run(gpu, "l2Normalize", code, [rows, D, f32Word(eps)], [x, out], rows);
  return out;
}

/** The usual output binding. */
const OUT = ["O", "read_write", "f32"] as const;

/** Values per chunk of the first groupNorm pass. */
const GN_CHUNK = 1024;

/**
 * GroupNorm with affine: x [B, C, S], w/b [C], statistics per (batch, group) over (C/groups)·S values.
 * Three dispatches: mean and M2 per chunk of 1024 values (two passes), Chan's merge per group, apply.
 */
export function groupNorm(gpu: Gpu, { x, w, b, B, C, S, groups, eps, silu }: Args<"groupNorm">): GpuTensor {
  const stats = source("groupNormStats", () =>
    kernelSource(
      [["X", "read", "f32"], ["St", "read_write", "f32"]],
      `  let n = pu(1u); let CH = pu(2u); let nc = pu(3u);
  if (gid >= pu(0u) * nc) { return; }
  let bg = gid / nc;
  let ch = gid - bg * nc;
  let base = bg * n + ch * CH;
  let cnt = min(CH, n - ch * CH);
  var mean = 0.0;
  for (var i = 0u; i < cnt; i++) { mean += X[base + i]; }
  mean /= f32(cnt);
  var m2 = 0.0;
  for (var i = 0u; i < cnt; i++) { let d = X[base + i] - mean; m2 += d * d; }
  St[2u * gid] = mean;
  St[2u * gid + 1u] = m2;`,
    ));
  const merge = source("groupNormMerge", () =>
    kernelSource(
      [["St", "read", "f32"], ["G", "read_write", "f32"]],
      `  let n = pu(1u); let CH = pu(2u); let nc = pu(3u);
  if (gid >= pu(0u)) { return; }
  var cnt = 0.0; var mean = 0.0; var m2 = 0.0;
  for (var ch = 0u; ch < nc; ch++) {
    let cb = f32(min(CH, n - ch * CH));
    let mb = St[2u * (gid * nc + ch)];
    let tot = cnt + cb;
    let d = mb - mean;
    mean += d * (cb / tot);
    m2 += St[2u * (gid * nc + ch) + 1u] + d * d * (cnt * cb / tot);
    cnt = tot;
  }
  G[2u * gid] = mean;
  G[2u * gid + 1u] = 1.0 / sqrt(m2 / f32(n) + pf(4u));`,
    ));
  const apply = source("groupNormApply", () =>
    kernelSource(
      [["X", "read", "f32"], ["G", "read", "f32"], ["Wt", "read", "f32"], ["Bs", "read", "f32"], OUT],
      `  if (gid >= pu(0u)) { return; }
  let C = pu(2u);
  let bc = gid / pu(1u);
  let bi = bc / C;
  let ch = bc - bi * C;
  let g = bi * pu(4u) + ch / pu(3u);
  let inv = G[2u * g + 1u];
  let sc = Wt[ch] * inv;
  let sh = Bs[ch] - G[2u * g] * sc;
  let y = X[gid] * sc + sh;
  O[gid] = select(y, y / (1.0 + exp(-y)), pu(5u) == 1u); // SiLU as unary(silu)`,
    ));
  const cg = C / groups, n = cg * S, G = B * groups, nc = Math.max(1, Math.ceil(n / GN_CHUNK));
  const st = gpu.tensor(2 * G * nc), g = gpu.tensor(2 * G), out = gpu.tensor(x.length);
  run(gpu, "groupNormStats", stats, [G, n, GN_CHUNK, nc], [x, st], G * nc);
  run(gpu, "groupNormMerge", merge, [G, n, GN_CHUNK, nc, f32Word(eps)], [st, g], G);
  run(gpu, "groupNormApply", apply, [x.length, S, C, cg, groups, silu ? 1 : 0], [x, g, w, b, out], x.length);
  gpu.release(st);
  gpu.release(g);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Elementwise

const UNARY_WGSL = {
  silu: "v / (1.0 + exp(-v))",
  // tanh saturates to ±1 in float32 beyond |z| ≈ 9; clamping keeps exp-based tanh finite.
  gelu_tanh: "0.5 * v * (1.0 + tanh(clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -10.0, 10.0)))",
  exp: "exp(v)",
} as const;

/** fn(x) elementwise (silu, gelu_tanh, exp). */
export function unary(gpu: Gpu, { x, fn }: Args<"unary">): GpuTensor {
  const expr = UNARY_WGSL[fn];
  if (!expr) throw new TypeError(`unary: unknown function "${fn}"`);
  const code = source(`unary:${fn}`, () =>
    kernelSource(
      [["X", "read", "f32"], ["O", "read_write", "f32"]],
      `  if (gid >= pu(0u)) { return; }
  let v = X[gid];
  O[gid] = ${expr};`,
    ));
  const out = gpu.tensor(x.length);
  run(gpu, `unary_${fn}`, code, [x.length], [x, out], x.length);
  return out;
}

const SCALAR_WGSL = { mul: "v * c", add: "v + c", min: "min(v, c)", max: "max(v, c)" } as const;

/** fn(x, c) elementwise (mul, add, min, max); c is rounded to float32. */
export function scalar(gpu: Gpu, { x, fn, value: c }: Args<"scalar">): GpuTensor {
  const expr = SCALAR_WGSL[fn];
  if (!expr) throw new TypeError(`scalar: unknown function "${fn}"`);
  const code = source(`scalar:${fn}`, () =>
    kernelSource(
      [["X", "read", "f32"], ["O", "read_write", "f32"]],
      `  if (gid >= pu(0u)) { return; }
  let v = X[gid];
  let c = pf(1u);
  O[gid] = ${expr};`,
    ));
  const out = gpu.tensor(x.length);
  run(gpu, `scalar_${fn}`, code, [x.length, f32Word(c)], [x, out], x.length);
  return out;
}

/** Largest rank of binary and permute. */
const MAX_RANK = 6;

/** Pads shape/stride lists to MAX_RANK with leading 1s (shape) and 0s (strides). */
function padRank(what: string, shape: readonly number[], ...strides: (readonly number[])[]): number[] {
  if (shape.length > MAX_RANK) throw new RangeError(`${what}: rank ${shape.length} > ${MAX_RANK} is not supported`);
  const pad = MAX_RANK - shape.length;
  const out = [...new Array<number>(pad).fill(1), ...shape];
  for (const s of strides) out.push(...new Array<number>(pad).fill(0), ...s);
  return out;
}

/** WGSL that turns `gid` into offsets `pa` (and `pb`) from a padded shape at word 1 and strides after it. */
function unravel(offsets: readonly string[]): string {
  const lines = [`  var rem = gid;`, ...offsets.map((o) => `  var ${o} = 0u;`)];
  for (let d = MAX_RANK - 1; d >= 0; d--) {
    lines.push(`  { let s = pu(${1 + d}u); let q = rem / s; let c = rem - q * s; rem = q;`);
    offsets.forEach((o, k) => lines.push(`    ${o} += c * pu(${1 + MAX_RANK * (k + 1) + d}u);`));
    lines.push(`  }`);
  }
  return lines.join("\n");
}

const BINARY_WGSL = { add: "a + b", sub: "a - b", mul: "a * b" } as const;

/**
 * fn(a, b) with broadcasting: `shape` is the output shape (rank ≤ 6), `aStrides`/`bStrides` the inputs' strides over
 * it (0 on broadcast axes).
 */
export function binary(gpu: Gpu, { a, b, fn, shape, aStrides: as, bStrides: bs }: Args<"binary">): GpuTensor {
  const expr = BINARY_WGSL[fn];
  if (!expr) throw new TypeError(`binary: unknown function "${fn}"`);
  const code = source(`binary:${fn}`, () =>
    kernelSource(
      [["A", "read", "f32"], ["Bv", "read", "f32"], ["O", "read_write", "f32"]],
      `  if (gid >= pu(0u)) { return; }
${unravel(["pa", "pb"])}
  let a = A[pa];
  let b = Bv[pb];
  O[gid] = ${expr};`,
    ));
  const n = shape.reduce((p, d) => p * d, 1);
  const out = gpu.tensor(n);
  run(gpu, `binary_${fn}`, code, [n, ...padRank("binary", shape, as, bs)], [a, b, out], n);
  return out;
}

/**
 * a + b·c with broadcasting (rank ≤ 6), the product and the sum each rounded to float32 as
 * `binary` mul then add: one pass instead of two.
 */
export function addMul(
  gpu: Gpu,
  { a, b, c, shape, aStrides: as, bStrides: bs, cStrides: cs }: Args<"addMul">,
): GpuTensor {
  const code = source("addMul", () =>
    kernelSource(
      [["A", "read", "f32"], ["Bv", "read", "f32"], ["Cv", "read", "f32"], ["O", "read_write", "f32"]],
      `  if (gid >= pu(0u)) { return; }
${unravel(["pa", "pb", "pc"])}
  let p = Bv[pb] * Cv[pc];
  O[gid] = A[pa] + p;`,
    ));
  const n = shape.reduce((p, d) => p * d, 1);
  const out = gpu.tensor(n);
  run(gpu, "addMul", code, [n, ...padRank("addMul", shape, as, bs, cs)], [a, b, c, out], n);
  return out;
}

/**
 * Heads of a packed projection (x [B·T, W] -> [B, H, T, D], see the contract) as the kernels it
 * replaces: slice, permute, l2Normalize and mul by τ, each on the device, so the bits are theirs.
 */
export function heads(gpu: Gpu, { x, rows, T, W, start, H, D, eps, tau }: Args<"heads">): GpuTensor {
  const B = rows / T, whole = start === 0 && H * D === W;
  const cut = whole ? x : slice(gpu, { x, outer: rows, size: W, inner: 1, start, end: start + H * D });
  let y = permute(gpu, { x: cut, shape: [B, T, H, D], perm: [0, 2, 1, 3] });
  if (!whole) gpu.release(cut);
  if (eps !== null) {
    const n = l2Normalize(gpu, { x: y, D, eps });
    gpu.release(y), y = n;
  }
  if (!tau) return y;
  const shape = [B, H, T, D];
  const out = binary(gpu, {
    a: y,
    b: tau,
    fn: "mul",
    shape,
    aStrides: [H * T * D, T * D, D, 1],
    bStrides: [0, 1, 0, 0],
  });
  gpu.release(y);
  return out;
}

/** Transpose (f32 or i32, rank ≤ 6): out.shape[i] = shape[perm[i]]. */
export function permute(gpu: Gpu, { x, shape, perm }: Args<"permute">): GpuTensor {
  const code = source("permute", () =>
    kernelSource(
      [["X", "read", "u32"], ["O", "read_write", "u32"]],
      `  if (gid >= pu(0u)) { return; }
${unravel(["p"])}
  O[gid] = X[p];`,
    ));
  const r = shape.length;
  const strides = new Array<number>(r);
  for (let d = r - 1, s = 1; d >= 0; d--) strides[d] = s, s *= shape[d]!;
  const outShape = perm.map((p) => shape[p]!), inStride = perm.map((p) => strides[p]!);
  const out = gpu.tensor(x.length, x.dtype);
  run(gpu, "permute", code, [x.length, ...padRank("permute", outShape, inStride)], [x, out], x.length);
  return out;
}

function copySource(): string {
  return source("copyRows", () =>
    kernelSource(
      [["X", "read", "u32"], ["O", "read_write", "u32"]],
      `  if (gid >= pu(0u)) { return; }
  let w = pu(1u);
  let o = gid / w;
  let r = gid - o * w;
  O[o * pu(4u) + pu(5u) + r] = X[o * pu(2u) + pu(3u) + r];`,
    ));
}

/** Copies `outer` rows of w words: row o of x at o·srcStride + srcAt to o·dstStride + dstAt of out. */
function copyRows(
  gpu: Gpu,
  x: GpuTensor,
  out: GpuTensor,
  outer: number,
  w: number,
  srcStride: number,
  srcAt: number,
  dstStride: number,
  dstAt: number,
): void {
  const n = outer * w;
  if (n === 0) return;
  run(gpu, "copy", copySource(), [n, w, srcStride, srcAt, dstStride, dstAt], [x, out], n);
}

/** [outer, size, inner] -> [outer, end - start, inner] (f32 or i32). */
export function slice(gpu: Gpu, { x, outer, size, inner, start, end }: Args<"slice">): GpuTensor {
  const w = (end - start) * inner;
  const out = gpu.tensor(outer * w, x.dtype);
  copyRows(gpu, x, out, outer, w, size * inner, start * inner, w, 0);
  return out;
}

/** Joins [outer, size_i, inner] tensors along the middle axis (one copy dispatch per input). */
export function concat(gpu: Gpu, { xs, outer, sizes, inner }: Args<"concat">): GpuTensor {
  const total = sizes.reduce((a, s) => a + s, 0);
  const out = gpu.tensor(outer * total * inner, xs[0]?.dtype ?? "f32");
  let at = 0;
  xs.forEach((x, i) => {
    const w = sizes[i]! * inner;
    copyRows(gpu, x, out, outer, w, w, 0, total * inner, at);
    at += w;
  });
  return out;
}

/** A model input as a device tensor: host data is uploaded (owned by the entry), device tensors pass through. */
export function asDevice(gpu: Gpu, x: Float32Array | Int32Array | { readonly length: number }): GpuTensor {
  if (x instanceof Float32Array || x instanceof Int32Array) return gpu.upload(x);
  if (x instanceof GpuTensor) return x;
  throw new TypeError("WebGPU: an input is neither host data nor a tensor of this module's device");
}

/** Whether an input was given as host data (then its uploaded copy is the entry's to release). */
export function isHost(x: unknown): boolean {
  return x instanceof Float32Array || x instanceof Int32Array;
}

/** The rows of `x` twice along the batch axis, on the device: both CFG halves get the same input. */
export function twice(gpu: Gpu, x: GpuTensor): GpuTensor {
  return concat(gpu, { xs: [x, x], outer: 1, sizes: [x.length, x.length], inner: 1 });
}

/** Scale index of every token of a schedule (computed on the host, uploaded). */
export function levelIds(gpu: Gpu, { schedule }: Args<"levelIds">): GpuTensor {
  const out: number[] = [];
  schedule.forEach((n, s) => out.push(...new Array<number>(n * n).fill(s)));
  return gpu.upload(Int32Array.from(out));
}

/** Nearest-neighbour upsampling: x [BC, h, w] -> [BC, f·h, f·w]. */
export function upsampleNearest(gpu: Gpu, { x, BC, h, w, factor: f }: Args<"upsampleNearest">): GpuTensor {
  const code = source("upsampleNearest", () =>
    kernelSource(
      [["X", "read", "u32"], ["O", "read_write", "u32"]],
      `  if (gid >= pu(0u)) { return; }
  let h = pu(1u); let w = pu(2u); let f = pu(3u);
  let W = w * f; let H = h * f;
  let t = gid / W;
  let xo = gid - t * W;
  let c = t / H;
  let y = t - c * H;
  O[gid] = X[(c * h + y / f) * w + xo / f];`,
    ));
  const n = BC * h * f * w * f;
  const out = gpu.tensor(n, x.dtype);
  run(gpu, "upsampleNearest", code, [n, h, w, f], [x, out], n);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Attention

/** Exact attention: flash-style tiles of keys in workgroup memory (`./attention.ts`). */
export { attention } from "./attention.ts";

// ---------------------------------------------------------------------------------------------
// Convolution and resampling

/** Output pixels × output channels (a multiple of 4) of one conv2d invocation. */
const CP = 4, CC = 8;

function conv2dSource(): string {
  return source("conv2d", () => {
    const px = range(CP), chans = range(CC), quads = range(CC / 4);
    const tap = (t: number) => [
      `        { let iy = oy${t} + i32(dy) - pad; let ix = ox${t} + i32(dx) - pad;`,
      `          if (iy >= 0 && iy < i32(H) && ix >= 0 && ix < i32(W)) {`,
      `            let v = X[xb + u32(iy) * W + u32(ix)];`,
      ...quads.map((q) => `            a${t}_${q} += v * w${q};`),
      `          } }`,
    ];
    const store = (t: number) => [
      `  if (p0 + ${t}u < HW) {`,
      ...quads.flatMap((q) => [
        `    { let v = a${t}_${q} + bias${q};`,
        ...range(4).map((c) =>
          `      if (co0 + ${4 * q + c}u < Co) { O[(n * Co + co0 + ${4 * q + c}u) * HW + p0 + ${t}u] = v[${c}]; }`
        ),
        `    }`,
      ]),
      `  }`,
    ];
    const body = [
      `  let Ci = pu(0u); let H = pu(1u); let W = pu(2u); let Co = pu(3u);`,
      `  let kh = pu(4u); let kw = pu(5u); let pad = i32(pu(6u)); let Wo = pu(8u);`,
      `  let HW = pu(7u) * Wo;`,
      `  let gxp = pu(9u); let ncg = pu(10u);`,
      `  let rest = wg / gxp;`,
      `  let n = rest / ncg;`,
      `  if (n >= pu(11u)) { return; }`,
      `  let co0 = (rest - n * ncg) * ${CC}u;`,
      `  let p0 = ((wg - rest * gxp) * ${WG}u + lid) * ${CP}u;`,
      `  if (p0 >= HW) { return; }`,
      `  let khw = kh * kw;`,
      `  let K = Ci * khw;`,
      ...px.map((t) =>
        `  let q${t} = min(p0 + ${t}u, HW - 1u); let oy${t} = i32(q${t} / Wo); let ox${t} = i32(q${t} % Wo);`
      ),
      ...chans.map((c) => `  let wc${c} = min(co0 + ${c}u, Co - 1u) * K;`),
      ...px.flatMap((t) => quads.map((q) => `  var a${t}_${q} = vec4<f32>(0.0);`)),
      `  for (var ci = 0u; ci < Ci; ci++) {`,
      `    let xb = (n * Ci + ci) * H * W;`,
      `    for (var dy = 0u; dy < kh; dy++) {`,
      `      for (var dx = 0u; dx < kw; dx++) {`,
      `        let kk = ci * khw + dy * kw + dx;`,
      ...quads.map((q) =>
        `        let w${q} = vec4<f32>(${range(4).map((c) => `Wt[wc${4 * q + c} + kk]`).join(", ")});`
      ),
      ...px.flatMap(tap),
      `      }`,
      `    }`,
      `  }`,
      ...quads.map((q) =>
        `  let bias${q} = vec4<f32>(${range(4).map((c) => `Bs[min(co0 + ${4 * q + c}u, Co - 1u)]`).join(", ")});`
      ),
      ...px.flatMap(store),
    ];
    return kernelSource([["X", "read", "f32"], ["Wt", "read", "f32"], ["Bs", "read", "f32"], OUT], body.join("\n"));
  });
}

/**
 * x [B, Ci, H, W] * w [Co, Ci, kh, kw] + b [Co], stride 1, zero padding `pad` -> [B, Co, Ho, Wo]. Direct
 * convolution: each invocation computes 4 output pixels × 8 output channels (channels from the
 * workgroup index, so weight loads are uniform), summing over (ci, dy, dx) in the JS kernel's order.
 */
export function conv2d(gpu: Gpu, { x, B, Ci, H, W, w, Co, kh, kw, b, pad }: Args<"conv2d">): GpuTensor {
  const Ho = H + 2 * pad - kh + 1, Wo = W + 2 * pad - kw + 1;
  const out = gpu.tensor(B * Co * Ho * Wo);
  const gxp = Math.ceil(Math.ceil((Ho * Wo) / CP) / WG), ncg = Math.ceil(Co / CC);
  const words = [Ci, H, W, Co, kh, kw, pad, Ho, Wo, gxp, ncg, B];
  gpu.dispatch("conv2d", conv2dSource(), words, [x, w, b, out], gxp * ncg * B);
  return out;
}

/** The [nOut, nIn] resampling matrix with each row's non-zero span: words lo[nOut], hi[nOut], then f32 bits. */
function resampleTensor(gpu: Gpu, mode: "bicubic" | "area", nIn: number, nOut: number): GpuTensor {
  return gpu.constant(`resample:${mode}:${nIn}:${nOut}`, () => {
    const m = resampleMatrix(mode, nIn, nOut);
    const words = new Int32Array(2 * nOut + nOut * nIn);
    const f = new Float32Array(words.buffer, 2 * nOut * 4, nOut * nIn);
    f.set(m);
    for (let o = 0; o < nOut; o++) {
      let lo = nIn, hi = 0;
      for (let i = 0; i < nIn; i++) if (m[o * nIn + i] !== 0) lo = Math.min(lo, i), hi = i + 1;
      words[o] = Math.min(lo, hi), words[nOut + o] = hi;
    }
    return words;
  });
}

/** Resamples the middle axis of [outer, nIn, inner] to nOut with a matrix from resampleTensor. */
function resampleAxis(
  gpu: Gpu,
  x: GpuTensor,
  m: GpuTensor,
  outer: number,
  nIn: number,
  nOut: number,
  inner: number,
): GpuTensor {
  const code = source("resample", () =>
    kernelSource(
      [["X", "read", "f32"], ["Mx", "read", "u32"], ["O", "read_write", "f32"]],
      `  if (gid >= pu(0u)) { return; }
  let nIn = pu(1u); let nOut = pu(2u); let inner = pu(3u);
  let t = gid / inner;
  let j = gid - t * inner;
  let c = t / nOut;
  let o = t - c * nOut;
  let xb = c * nIn * inner + j;
  let wb = 2u * nOut + o * nIn;
  var s = 0.0;
  for (var i = Mx[o]; i < Mx[nOut + o]; i++) { s += bitcast<f32>(Mx[wb + i]) * X[xb + i * inner]; }
  O[gid] = s;`,
    ));
  const n = outer * nOut * inner;
  const out = gpu.tensor(n);
  run(gpu, "interpolate", code, [n, nIn, nOut, inner], [x, m, out], n);
  return out;
}

/**
 * x [BC, h, w] -> [BC, size, size]: out = M X Mᵀ per channel with the JS kernel's `resampleMatrix`
 * (bicubic a = −0.75 half-pixel clamped, or area), in two separable passes over each row's non-zeros.
 */
export function interpolate(gpu: Gpu, { x, BC, h, w, size, mode }: Args<"interpolate">): GpuTensor {
  const tmp = resampleAxis(gpu, x, resampleTensor(gpu, mode, h, size), BC, h, size, w);
  const out = resampleAxis(gpu, tmp, resampleTensor(gpu, mode, w, size), BC * size, w, size, 1);
  gpu.release(tmp);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Low-rank attention
//
// S is kept in float32 on the device (the JS kernels accumulate it in float64): each entry of S carries
// the float32 rounding of a sum over the keys it covers, ≈ n·2^-24 of Σ|φ_k·v| for n keys, and the
// windowed form recomputes S per scale from the window's keys instead of subtracting the scale that
// left (no cancellation against earlier scales). Feature tables are uploaded once per table object;
// their coefficients are rounded to float32.

/** Relative slack of the guards, as in runtime/js/lowrank.ts. */
const SLACK = 1e-5;

/** Words [0, r) parent, [r, 2r) variable, [2r, 3r) f32 coef. */
function tableTensor(gpu: Gpu, table: FeatureTable): GpuTensor {
  return gpu.constant(table, () => {
    const r = table.r, words = new Int32Array(3 * r);
    words.set(table.parent);
    words.set(table.variable, r);
    new Float32Array(words.buffer, 2 * r * 4, r).set(table.coef);
    return words;
  });
}

/** Walks monomial m's parent chain: f *= x[base + variable]. */
const CHAIN = (x: string, base: string, m: string, f: string) =>
  `{ var a = ${m}; loop { if (a == 0u) { break; } ${f} *= ${x}[${base} + Tb[r + a]]; a = Tb[a]; } }`;

/** S[bh, i, :] (+)= Σ_{j ∈ [from, to)} φ_k(k_j)[i]·[v_j, 1]; one invocation per (head, feature). */
function accumulateSource(Dv: number, masked: boolean): string {
  return source(`lrAccumulate:${Dv}:${masked}`, () => {
    const W = Dv + 1;
    const bindings: [string, "read" | "read_write", string][] = [
      ["Kt", "read", "f32"],
      ["Vt", "read", "f32"],
      ["Tb", "read", "u32"],
      ["S", "read_write", "f32"],
    ];
    if (masked) bindings.push(["Fb", "read", "u32"]);
    return kernelSource(
      bindings,
      `  let r = pu(1u); let T = pu(2u); let D = pu(3u);
  if (gid >= pu(0u) * r) { return; }
  let bh = gid / r;
  let i = gid - bh * r;
  ${masked ? "if (Fb[bh] != 0u) { return; }" : ""}
  var acc: array<f32, ${W}>;
  let so = gid * ${W}u;
  if (pu(6u) == 0u) { for (var c = 0u; c < ${W}u; c++) { acc[c] = S[so + c]; } }
  for (var j = pu(4u); j < pu(5u); j++) {
    let kb = (bh * T + j) * D;
    var f = 1.0;
    ${CHAIN("Kt", "kb", "i", "f")}
    let vb = (bh * T + j) * ${Dv}u;
    for (var c = 0u; c < ${Dv}u; c++) { acc[c] += f * Vt[vb + c]; }
    acc[${Dv}] += f;
  }
  for (var c = 0u; c < ${W}u; c++) { S[so + c] = acc[c]; }`,
    );
  });
}

function accumulate(
  gpu: Gpu,
  k: GpuTensor,
  v: GpuTensor,
  table: FeatureTable,
  S: GpuTensor,
  BH: number,
  T: number,
  D: number,
  Dv: number,
  from: number,
  to: number,
  reset: boolean,
  mask: GpuTensor | null,
): void {
  const tensors = [k, v, tableTensor(gpu, table), S];
  if (mask) tensors.push(mask);
  const words = [BH, table.r, T, D, from, to, reset ? 1 : 0];
  run(gpu, "lowrankAccumulate", accumulateSource(Dv, mask !== null), words, tensors, BH * table.r);
}

/** out rows [from, from + n) of each head from S; one invocation per (head, query). */
function readSource(Dv: number, masked: boolean): string {
  return source(`lrRead:${Dv}:${masked}`, () => {
    const W = Dv + 1;
    const bindings: [string, "read" | "read_write", string][] = [
      ["Qt", "read", "f32"],
      ["Tb", "read", "u32"],
      ["S", "read", "f32"],
      ["O", "read_write", "f32"],
    ];
    if (masked) bindings.push(["Fb", "read", "u32"]);
    return kernelSource(
      bindings,
      `  let r = pu(1u); let T = pu(2u); let D = pu(3u); let n = pu(5u);
  if (gid >= pu(0u) * n) { return; }
  let bh = gid / n;
  let t = pu(4u) + gid - bh * n;
  ${masked ? "if (Fb[bh] != 0u) { return; }" : ""}
  var acc: array<f32, ${W}>;
  let qb = (bh * T + t) * D;
  let sb = bh * r * ${W}u;
  for (var m = 0u; m < r; m++) {
    var f = bitcast<f32>(Tb[2u * r + m]);
    ${CHAIN("Qt", "qb", "m", "f")}
    let so = sb + m * ${W}u;
    for (var c = 0u; c < ${W}u; c++) { acc[c] += f * S[so + c]; }
  }
  let ob = (bh * T + t) * ${Dv}u;
  for (var c = 0u; c < ${Dv}u; c++) { O[ob + c] = acc[c] / acc[${Dv}]; }`,
    );
  });
}

function readRows(
  gpu: Gpu,
  q: GpuTensor,
  table: FeatureTable,
  S: GpuTensor,
  out: GpuTensor,
  BH: number,
  T: number,
  D: number,
  Dv: number,
  from: number,
  to: number,
  mask: GpuTensor | null,
): void {
  const tensors = [q, tableTensor(gpu, table), S, out];
  if (mask) tensors.push(mask);
  const words = [BH, table.r, T, D, from, to - from];
  run(gpu, "lowrankRead", readSource(Dv, mask !== null), words, tensors, BH * (to - from));
}

/** WGSL: the largest squared row norm of rows [0, T) of head bh of X [BH, T, D], into `name`. */
const MAX_NORM2 = (X: string, T: string, name: string) =>
  `var ${name} = 0.0;
  for (var i = 0u; i < ${T}; i++) {
    let b = (bh * ${T} + i) * D;
    var s = 0.0;
    for (var c = 0u; c < D; c++) { let x = ${X}[b + c]; s += x * x; }
    ${name} = max(${name}, s);
  }`;

/**
 * q [BH, Tq, D], k/v [BH, Tk, D|Dv] -> [BH, Tq, Dv], low-rank attention with the run-time β guard of the
 * JS kernel: per head (one invocation each) β = |s|·max‖q‖·max‖k‖ is measured on the device; heads
 * above `beta`·(1 + 1e-5) are computed by the exact kernel (over `exactRanges`) instead. Checks and
 * fallbacks are counted on the device (`gpu.guardStats()`). With `sizes` the mask is block-causal over
 * scales (window ∞) or a window of scales: S is built scale by scale (one accumulate and one read
 * dispatch per scale).
 */
export function lowrankAttention(
  gpu: Gpu,
  { q, k, v, BH, Tq, Tk, D, Dv, scale, sizes, window, table, beta, exactRanges }: Args<"lowrankAttention">,
): GpuTensor {
  const guard = source("lrGuard", () =>
    kernelSource(
      [["Q", "read", "f32"], ["K", "read", "f32"], ["Fb", "read_write", "u32"], ["E", "read_write", "atomic<u32>"]],
      `  let Tq = pu(1u); let Tk = pu(2u); let D = pu(3u);
  if (gid >= pu(0u)) { return; }
  let bh = gid;
  ${MAX_NORM2("Q", "Tq", "nq")}
  ${MAX_NORM2("K", "Tk", "nk")}
  let off = pf(4u) * sqrt(nq) * sqrt(nk) > pf(5u);
  Fb[bh] = select(0u, 1u, off);
  atomicAdd(&E[4], 1u);
  if (off) { atomicAdd(&E[5], 1u); }`,
    ));
  const out = gpu.tensor(BH * Tq * Dv);
  const fb = gpu.tensor(BH, "i32");
  run(gpu, "lowrankGuard", guard, [BH, Tq, Tk, D, f32Word(Math.abs(scale)), f32Word(beta * (1 + SLACK))], [
    q,
    k,
    fb,
    gpu.status,
  ], BH);
  const S = gpu.tensor(BH * table.r * (Dv + 1));
  if (!sizes) {
    accumulate(gpu, k, v, table, S, BH, Tk, D, Dv, 0, Tk, true, fb);
    readRows(gpu, q, table, S, out, BH, Tq, D, Dv, 0, Tq, fb);
  } else {
    const starts = [0];
    for (const n of sizes) starts.push(starts.at(-1)! + n);
    const prefix = window >= sizes.length; // every scale sees all earlier ones: grow S incrementally
    for (let s = 0; s < sizes.length; s++) {
      const from = prefix ? starts[s]! : starts[Math.max(0, s - window + 1)]!;
      accumulate(gpu, k, v, table, S, BH, Tk, D, Dv, from, starts[s + 1]!, !prefix || s === 0, fb);
      readRows(gpu, q, table, S, out, BH, Tq, D, Dv, starts[s]!, starts[s + 1]!, fb);
    }
  }
  attentionInto(gpu, q, k, v, BH, Tq, Tk, D, Dv, scale, exactRanges, out, fb);
  gpu.release(S);
  gpu.release(fb);
  return out;
}

/**
 * Per head of x [BH, T, D]: norms[bh] = max row norm; reports head bh at `site` when mul·norm > thr
 * (lowest offending head wins); with `count`, adds BH to the device's guard checks.
 */
function normGuard(
  gpu: Gpu,
  x: GpuTensor,
  BH: number,
  T: number,
  D: number,
  mul: number,
  thr: number,
  site: number,
  count: boolean,
): GpuTensor {
  const code = source("normGuard", () =>
    kernelSource(
      [["X", "read", "f32"], ["Nm", "read_write", "f32"], ["E", "read_write", "atomic<u32>"]],
      `  let T = pu(1u); let D = pu(2u);
  if (gid >= pu(0u)) { return; }
  let bh = gid;
  ${MAX_NORM2("X", "T", "m")}
  let n = sqrt(m);
  Nm[bh] = n;
  if (pu(6u) != 0u) { atomicAdd(&E[4], 1u); }
  if (pf(3u) * n > pf(4u)) { report(pu(5u), bh); }`,
    ));
  const norms = gpu.tensor(BH);
  run(gpu, "lowrankNormGuard", code, [BH, T, D, f32Word(mul), f32Word(thr), site, count ? 1 : 0], [
    x,
    norms,
    gpu.status,
  ], BH);
  fixup(gpu, site, norms);
  return norms;
}

/**
 * Generation state: S' [BH, r, Dv+1] = prev + Σ_j φ_k(k_j)[v_j, 1] over the new keys k [BH, T, D]
 * (float32 on the device). A key of norm > keyNorm·(1 + 1e-5) is reported (read() throws GpuKernelError
 * with the JS GuardError's message, naming the first offending head's max key norm).
 */
export function lowrankState(
  gpu: Gpu,
  { k, v, prev, BH, T, D, Dv, table, keyNorm, what }: Args<"lowrankState">,
): GpuTensor {
  const site = gpu.site((_, bits) => ({
    message: `${what}: a key has norm ${wordF32(bits).toPrecision(4)} > ${
      keyNorm.toPrecision(4)
    }, the bound the low-rank state was compiled for (recompile with the checkpoint you run, or with --attention exact)`,
    kind: "guard",
  }));
  const norms = normGuard(gpu, k, BH, T, D, 1, keyNorm * (1 + SLACK), site, false);
  const w = table.r * (Dv + 1);
  const out = gpu.tensor(BH * w);
  if (prev) copyRows(gpu, prev, out, 1, BH * w, 0, 0, 0, 0);
  accumulate(gpu, k, v, table, out, BH, T, D, Dv, 0, T, prev === null, null);
  gpu.release(norms);
  return out;
}

/**
 * Reads queries q [BH, T, D] against the state [BH, r, Dv+1] -> [BH, T, Dv]. The guard (counted per head)
 * reports |s|·max‖q‖·keyNorm > β·(1 + 1e-5) like the JS GuardError.
 */
export function lowrankRead(
  gpu: Gpu,
  { q, state, BH, T, D, Dv, scale, table, beta, keyNorm, what }: Args<"lowrankRead">,
): GpuTensor {
  const site = gpu.site((_, bits) => ({
    message: `${what}: logits reach ${(Math.abs(scale) * wordF32(bits) * keyNorm).toPrecision(4)} > β = ${
      beta.toPrecision(4)
    }, the bound the low-rank state was compiled for (recompile with the checkpoint you run, or with --attention exact)`,
    kind: "guard",
  }));
  const norms = normGuard(gpu, q, BH, T, D, Math.abs(scale) * keyNorm, beta * (1 + SLACK), site, true);
  const out = gpu.tensor(BH * T * Dv);
  readRows(gpu, q, table, state, out, BH, T, D, Dv, 0, T, null);
  gpu.release(norms);
  return out;
}
