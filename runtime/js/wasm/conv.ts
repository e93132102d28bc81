/**
 * @file Convolutions on the WebAssembly NN GEMM, channel-major end to end: out[Co, P] = w[Co, K] ·
 * col[K, P] with K = Ci·kh·kw and P the output pixels, so no transposes. A 1×1 convolution without
 * padding multiplies by the image itself; others build col (pixels contiguous: each of its K rows
 * is the image shifted by one tap, so rows are block copies) in chunks of output rows.
 */
import { CTL, NN } from "./gemm_module.ts";
import {
  align,
  ensureWorkers,
  nnRun,
  packedPanels,
  panelRows,
  PARALLEL_MIN_MACS,
  reserve,
  residentAt,
  residentBytes,
  runShared,
  type Runtime,
  scratchBase,
  wasmRuntime,
} from "./gemm.ts";
import { TB, WG, winogradScratch } from "./winograd_module.ts";

/** Bytes of one col chunk (K rows × a band of output pixels). */
const COL_BYTES = 8 * 2 ** 20;

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/**
 * x [B, Ci, H, W] * w [Co, Ci, kh, kw] + b [Co], stride 1, zero padding `pad`, into out
 * [B, Co, Ho, Wo]; false (nothing written) when the WASM path is off or the operands do not fit.
 */
export function conv2dWasm(
  x: Float32Array,
  B: number,
  Ci: number,
  H: number,
  W: number,
  w: Float32Array,
  Co: number,
  kh: number,
  kw: number,
  b: Float32Array,
  pad: number,
  out: Float32Array,
): boolean {
  const rt = wasmRuntime();
  if (!rt) return false;
  if (kh === 3 && kw === 3 && pad === 1 && H % 2 === 0 && W % 8 === 0) {
    return winograd(rt, x, B, Ci, H, W, w, Co, b, out);
  }
  const Ho = H + 2 * pad - kh + 1, Wo = W + 2 * pad - kw + 1, P = Ho * Wo, K = Ci * kh * kw;
  const Mp = panelRows(Co), Np = roundUp(P, NN.nr) + NN.nr, direct = kh === 1 && kw === 1 && pad === 0;
  // rows of output pixels per col chunk (all of them for a direct 1×1)
  const rows = direct ? Ho : Math.max(1, Math.min(Ho, Math.floor(COL_BYTES / (4 * K * Wo))));
  const colN = roundUp(rows * Wo, NN.nr);
  const base = scratchBase(rt);
  const aAt = packedPanels(rt, w, Co, K, base); // at base unless cached
  const biasAt = align(aAt === base ? base + Mp * K * 4 : base);
  const oAt = align(biasAt + Mp * 4), colAt = align(oAt + Mp * Np * 4);
  if (!reserve(rt, colAt + K * (direct ? Np : colN) * 4)) return false;
  const f32 = rt.f32;
  f32.fill(0, biasAt / 4, biasAt / 4 + Mp);
  f32.set(b.subarray(0, Co), biasAt / 4);
  for (let n = 0; n < B; n++) {
    const xn = x.subarray(n * Ci * H * W, (n + 1) * Ci * H * W);
    if (direct) {
      for (let c = 0; c < Ci; c++) {
        f32.set(xn.subarray(c * P, c * P + P), colAt / 4 + c * Np);
        f32.fill(0, colAt / 4 + c * Np + P, colAt / 4 + (c + 1) * Np);
      }
      nnRun(rt, aAt, colAt, Np * 4, biasAt, oAt, Np * 4, Mp, Np, K);
    } else {
      for (let y0 = 0; y0 < Ho; y0 += rows) {
        const r = Math.min(rows, Ho - y0), n8 = roundUp(r * Wo, NN.nr);
        im2colRows(xn, Ci, H, W, kh, kw, pad, Wo, y0, r, f32, colAt / 4, n8);
        nnRun(rt, aAt, colAt, n8 * 4, biasAt, oAt + y0 * Wo * 4, Np * 4, Mp, n8, K);
      }
    }
    const o = out.subarray(n * Co * P, (n + 1) * Co * P);
    for (let c = 0; c < Co; c++) o.set(f32.subarray(oAt / 4 + c * Np, oAt / 4 + c * Np + P), c * P);
  }
  return true;
}

/**
 * col[k, p] for output rows [y0, y0 + r) (p = (y − y0)·Wo + x; k = (ci, dy, dx)), rows `ld` floats
 * apart at float index `at` of dst; zeros where a tap falls outside the image and past r·Wo.
 */
function im2colRows(
  x: Float32Array,
  Ci: number,
  H: number,
  W: number,
  kh: number,
  kw: number,
  pad: number,
  Wo: number,
  y0: number,
  r: number,
  dst: Float32Array,
  at: number,
  ld: number,
): void {
  let row = at;
  for (let ci = 0; ci < Ci; ci++) {
    for (let dy = 0; dy < kh; dy++) {
      for (let dx = 0; dx < kw; dx++, row += ld) {
        // output column ox reads input column ox + dx − pad: valid for ox in [lo, hi)
        const lo = Math.max(0, pad - dx), hi = Math.min(Wo, W + pad - dx);
        for (let y = 0; y < r; y++) {
          const iy = y0 + y + dy - pad, o = row + y * Wo;
          if (iy < 0 || iy >= H || hi <= lo) {
            dst.fill(0, o, o + Wo);
            continue;
          }
          const src = (ci * H + iy) * W + dx - pad;
          dst.fill(0, o, o + lo);
          dst.set(x.subarray(src + lo, src + hi), o + lo);
          dst.fill(0, o + hi, o + Wo);
        }
        dst.fill(0, row + r * Wo, row + ld);
      }
    }
  }
}

/** Transformed weights U of resident 3×3 kernels, keyed by the weight's view. */
const winogradCache = new WeakMap<Float32Array, Uint8Array>();

/**
 * U = G g Gᵀ of w [Co, Ci, 3, 3] (at byte address wAt) as NN panels per ξ, written at byte address
 * uAt (16·cop·Ci floats; rows past Co are zeros).
 */
function transformWeights(rt: Runtime, wAt: number, Co: number, Ci: number, uAt: number): void {
  const cop = panelRows(Co);
  if (cop !== Co) rt.f32.fill(0, uAt / 4, uAt / 4 + 16 * cop * Ci);
  rt.winoU(wAt, Co, Ci, cop, uAt);
}

/** 3×3, padding 1, H even, W a multiple of 8: Winograd F(2×2, 3×3) bands on all threads. */
function winograd(
  rt: Runtime,
  x: Float32Array,
  B: number,
  Ci: number,
  H: number,
  W: number,
  w: Float32Array,
  Co: number,
  b: Float32Array,
  out: Float32Array,
): boolean {
  const cop = panelRows(Co), uBytes = 16 * cop * Ci * 4, Hp = H + 2, Wp = W + 4;
  // U: cached beside a resident weight (transformed once), else transformed into the scratch area
  const wIn = residentAt(rt, w);
  let uAt = -1;
  if (wIn >= 0) {
    let home = winogradCache.get(w);
    if (!home) {
      const got = residentBytes(uBytes);
      if (got) transformWeights(rt, wIn, Co, Ci, got.byteOffset), winogradCache.set(w, home = got);
    }
    if (home) uAt = home.byteOffset;
  }
  let cursor = scratchBase(rt); // after any cache allocation above
  if (uAt < 0) {
    const wAt = wIn >= 0 ? wIn : align(cursor + uBytes);
    if (!reserve(rt, wAt + Co * Ci * 36)) return false;
    if (wIn < 0) rt.f32.set(w.subarray(0, Co * Ci * 9), wAt / 4);
    uAt = cursor, cursor = align(cursor + uBytes);
    transformWeights(rt, wAt, Co, Ci, uAt);
  }
  const biasAt = cursor, xAt = align(biasAt + cop * 4), oAt = align(xAt + Ci * Hp * Wp * 4 + 64);
  const bands = Math.ceil((H / 2) * (W / 2) / TB);
  // few bands (small images): split the output channels too, so every thread has about 4 jobs
  const available = ensureWorkers(rt);
  const splits = Math.min(cop / NN.mr, Math.max(1, Math.ceil(4 * available / bands)));
  const coStep = Math.ceil(cop / NN.mr / splits) * NN.mr, jobs = bands * Math.ceil(cop / coStep);
  const threads = cop * Ci * H * W * 4 >= PARALLEL_MIN_MACS ? available : 1;
  const sAt = align(oAt + Co * H * W * 4);
  if (!reserve(rt, sAt + threads * winogradScratch(Ci, cop))) return false;
  const f32 = rt.f32, i32 = rt.i32;
  f32.fill(0, biasAt / 4, biasAt / 4 + cop);
  f32.set(b.subarray(0, Co), biasAt / 4);
  const xp = f32.subarray(xAt / 4, xAt / 4 + Ci * Hp * Wp);
  xp.fill(0);
  for (let n = 0; n < B; n++) {
    for (let c = 0; c < Ci; c++) {
      for (let y = 0; y < H; y++) {
        const src = ((n * Ci + c) * H + y) * W;
        xp.set(x.subarray(src, src + W), (c * Hp + y + 1) * Wp + 1);
      }
    }
    i32[WG.X] = xAt, i32[WG.U] = uAt, i32[WG.BIAS] = biasAt, i32[WG.OUT] = oAt, i32[WG.CI] = Ci;
    i32[WG.COP] = cop, i32[WG.CO] = Co, i32[WG.H] = H, i32[WG.W] = W, i32[WG.SCRATCH] = sAt;
    i32[WG.BANDS] = bands, i32[WG.CO_STEP] = coStep;
    if (threads <= 1) { for (let j = 0; j < jobs; j++) rt.wino(j, 0); }
    else (i32[CTL.KIND] = 3, runShared(rt, jobs));
    out.set(f32.subarray(oAt / 4, oAt / 4 + Co * H * W), n * Co * H * W);
  }
  return true;
}
