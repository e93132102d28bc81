/**
 * @file Convolutions on the WebAssembly NN GEMM, channel-major end to end: out[Co, P] = w[Co, K] ·
 * col[K, P] with K = Ci·kh·kw and P the output pixels, so no transposes. A 1×1 convolution without
 * padding multiplies by the image itself; others build col (pixels contiguous: each of its K rows
 * is the image shifted by one tap, so rows are block copies) in chunks of output rows.
 */
import { JOB, NN } from "./gemm_module.ts";
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
  runChunks,
  type Runtime,
  scratchBase,
  wasmRuntime,
} from "./gemm.ts";
import { TB, WG, winograd4Scratch, winogradScratch } from "./winograd_module.ts";

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
  if (kh === 3 && kw === 3 && pad === 1) {
    const v = winogradVariant(H, W);
    if (v) return winograd(rt, v, x, B, Ci, H, W, w, Co, b, out);
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

/** A Winograd variant F(m×m, 3×3): tiles of m×m pixels from (m + 2)² points ξ. */
interface Winograd {
  readonly m: 2 | 4;
  /** Whether an H×W image takes this variant. */
  readonly fits: (H: number, W: number) => boolean;
  /** Its band job's kind (`JOB` in gemm_module.ts). */
  readonly kind: number;
  readonly scratch: (ci: number, cop: number) => number;
  readonly job: (rt: Runtime) => (job: number, thread: number) => void;
  /** U of w [Co, Ci, 3, 3] (at byte address wAt of the memory) as NN panels per ξ at byte address uAt. */
  readonly weights: (rt: Runtime, wAt: number, Co: number, Ci: number, uAt: number) => void;
  /** Transformed weights of resident kernels, keyed by the weight's view. */
  readonly cache: WeakMap<Float32Array, Uint8Array>;
}

/**
 * F(4×4, 3×3) first (2.25 multiplications per output pixel and channel pair), else F(2×2, 3×3) (4);
 * groups of 4 tiles are vectorised along W, so W must be a multiple of 16 or 8. F(4×4) needs at
 * least two bands of TB tiles: on 16×16 (half a band, split by output channels) it runs 2–4 ms
 * faster than F(2×2) per 640-channel call, but its U takes about 60 ms more to compute on first
 * use, a loss for anything short of a few dozen images.
 */
const WINOGRAD: readonly Winograd[] = [
  {
    m: 4,
    fits: (H, W) => H % 4 === 0 && W % 16 === 0 && (H / 4) * (W / 4) >= 2 * TB,
    kind: JOB.wino4,
    scratch: winograd4Scratch,
    job: (rt) => rt.wino4,
    weights: winograd4Weights,
    cache: new WeakMap(),
  },
  {
    m: 2,
    fits: (H, W) => H % 2 === 0 && W % 8 === 0,
    kind: JOB.wino,
    scratch: winogradScratch,
    job: (rt) => rt.wino,
    weights: (rt, wAt, Co, Ci, uAt) => rt.winoU(wAt, Co, Ci, panelRows(Co), uAt),
    cache: new WeakMap(),
  },
];

/** The Winograd tile side m that a 3×3, padding-1 convolution over H×W takes (0: none, im2col). */
export const winogradTile = (H: number, W: number): number => winogradVariant(H, W)?.m ?? 0;

/** The first variant whose size rules an H×W image meets. */
const winogradVariant = (H: number, W: number): Winograd | undefined => WINOGRAD.find((v) => v.fits(H, W));

/** G of F(4×4, 3×3) [6, 3], row-major. */
const G4 = Float64Array.of(
  1 / 4,
  0,
  0,
  -1 / 6,
  -1 / 6,
  -1 / 6,
  -1 / 6,
  1 / 6,
  -1 / 6,
  1 / 24,
  1 / 12,
  1 / 6,
  1 / 24,
  -1 / 12,
  1 / 6,
  0,
  0,
  1,
);

/**
 * U = G g Gᵀ of F(4×4, 3×3) for every kernel of w [Co, Ci, 3, 3], in float64 and rounded once
 * (G's sixths and 24ths are not float32 numbers), as NN panels per ξ = 6a + j: U[ξ][co / MR][ci][co
 * mod MR], ξ slices 4·cop·Ci bytes apart; rows past Co are zeros. Panel by panel, so that each of
 * the 36 slices is written in order.
 */
function winograd4Weights(rt: Runtime, wAt: number, Co: number, Ci: number, uAt: number): void {
  const cop = panelRows(Co), mr = NN.mr, f32 = rt.f32, w0 = wAt / 4, u0 = uAt / 4, slice = cop * Ci;
  if (cop !== Co) f32.fill(0, u0, u0 + 36 * slice);
  const t = new Float64Array(18); // G g [6, 3]
  for (let p = 0; p < cop / mr; p++) {
    for (let ci = 0; ci < Ci; ci++) {
      for (let r = 0, co = p * mr; r < mr && co < Co; r++, co++) {
        const g = w0 + (co * Ci + ci) * 9;
        for (let a = 0; a < 18; a += 3) {
          const ga0 = G4[a]!, ga1 = G4[a + 1]!, ga2 = G4[a + 2]!;
          t[a] = ga0 * f32[g]! + ga1 * f32[g + 3]! + ga2 * f32[g + 6]!;
          t[a + 1] = ga0 * f32[g + 1]! + ga1 * f32[g + 4]! + ga2 * f32[g + 7]!;
          t[a + 2] = ga0 * f32[g + 2]! + ga1 * f32[g + 5]! + ga2 * f32[g + 8]!;
        }
        let at = u0 + (p * Ci + ci) * mr + r;
        for (let a = 0; a < 18; a += 3) {
          const t0 = t[a]!, t1 = t[a + 1]!, t2 = t[a + 2]!;
          for (let j = 0; j < 18; j += 3, at += slice) f32[at] = t0 * G4[j]! + t1 * G4[j + 1]! + t2 * G4[j + 2]!;
        }
      }
    }
  }
}

/** 3×3, padding 1: Winograd bands of variant v on all threads. */
function winograd(
  rt: Runtime,
  v: Winograd,
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
  const cop = panelRows(Co), uBytes = (v.m + 2) ** 2 * cop * Ci * 4, Hp = H + 2, Wp = W + 4;
  // U: cached beside a resident weight (transformed once), else transformed into the scratch area
  const wIn = residentAt(rt, w);
  let uAt = -1;
  if (wIn >= 0) {
    let home = v.cache.get(w);
    if (!home) {
      const got = residentBytes(uBytes);
      if (got) v.weights(rt, wIn, Co, Ci, got.byteOffset), v.cache.set(w, home = got);
    }
    if (home) uAt = home.byteOffset;
  }
  let cursor = scratchBase(rt); // after any cache allocation above
  if (uAt < 0) {
    const wAt = wIn >= 0 ? wIn : align(cursor + uBytes);
    if (!reserve(rt, wAt + Co * Ci * 36)) return false;
    if (wIn < 0) rt.f32.set(w.subarray(0, Co * Ci * 9), wAt / 4);
    uAt = cursor, cursor = align(cursor + uBytes);
    v.weights(rt, wAt, Co, Ci, uAt);
  }
  const biasAt = cursor, xAt = align(biasAt + cop * 4), oAt = align(xAt + Ci * Hp * Wp * 4 + 64);
  const bands = Math.ceil((H / v.m) * (W / v.m) / TB);
  // few bands (small images): split the output channels too, so every thread has about 4 jobs
  const available = ensureWorkers(rt);
  const splits = Math.min(cop / NN.mr, Math.max(1, Math.ceil(4 * available / bands)));
  const coStep = Math.ceil(cop / NN.mr / splits) * NN.mr, jobs = bands * Math.ceil(cop / coStep);
  const threads = cop * Ci * H * W * 4 >= PARALLEL_MIN_MACS ? available : 1;
  // the output area also stages the unpadded input (the bands write it only after the padding)
  const sAt = align(oAt + Math.max(Co, Ci) * H * W * 4);
  if (!reserve(rt, sAt + threads * v.scratch(Ci, cop))) return false;
  const f32 = rt.f32, i32 = rt.i32;
  f32.fill(0, biasAt / 4, biasAt / 4 + cop);
  f32.set(b.subarray(0, Co), biasAt / 4);
  f32.fill(0, xAt / 4 + Ci * Hp * Wp, xAt / 4 + Ci * Hp * Wp + 16); // the tail that vector loads may touch
  i32[WG.X] = xAt, i32[WG.U] = uAt, i32[WG.BIAS] = biasAt, i32[WG.OUT] = oAt, i32[WG.CI] = Ci;
  i32[WG.COP] = cop, i32[WG.CO] = Co, i32[WG.H] = H, i32[WG.W] = W, i32[WG.SCRATCH] = sAt;
  i32[WG.BANDS] = bands, i32[WG.CO_STEP] = coStep;
  const xIn = residentAt(rt, x), job = v.job(rt);
  for (let n = 0; n < B; n++) {
    // x padded [Ci, Hp, Wp] by wino_pad, one channel per job, from x in place when it is resident
    if (xIn >= 0) i32[WG.SRC] = xIn + n * Ci * H * W * 4;
    else i32[WG.SRC] = oAt, f32.set(x.subarray(n * Ci * H * W, (n + 1) * Ci * H * W), oAt / 4);
    runChunks(rt, threads, JOB.winoPad, Ci, rt.winoPad);
    runChunks(rt, threads, v.kind, jobs, (j) => job(j, 0));
    out.set(f32.subarray(oAt / 4, oAt / 4 + Co * H * W), n * Co * H * W);
  }
  return true;
}
