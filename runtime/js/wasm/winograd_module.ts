/**
 * @file Winograd F(2×2, 3×3) convolution (stride 1, padding 1) in WebAssembly SIMD128, one job per
 * band of TB output tiles (2×2 pixels each, row-major over the image), so a band's transformed
 * input and products stay in the thread's cache:
 *
 *   V[ξ][ci][t] = (Bᵀ d B)[ξ]      d: the 4×4 input patch of tile t, channel ci (vectorised over 4 tiles)
 *   M[ξ] = U[ξ] · V[ξ]              16 NN GEMMs [Co, Ci]·[Ci, TB] (U = G g Gᵀ, packed panels)
 *   out[co][2×2 of t] = Aᵀ M A + b  (vectorised over 4 tiles, stored as two 8-pixel rows)
 *
 * with Bᵀ = [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]], G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]],
 * Aᵀ = [[1,1,1,0],[0,1,−1,−1]]. Four multiplications per output pixel and channel pair instead of
 * nine. Requirements (checked by the host): H even, W a multiple of 8 (groups of 4 tiles never
 * straddle a row), the input zero-padded to [Ci][H + 2][W + 4].
 */
import { F32, Fn, I32, V128 } from "./encode.ts";

/** Tiles per job (a multiple of 8, the NN kernel's column tile). */
export const TB = 32;

/** Control-block slots of a Winograd job (i32 indices; see gemm_module.ts CTL). */
export const WG = {
  X: 22,
  U: 23,
  BIAS: 24,
  OUT: 25,
  CI: 26,
  /** Output channels rounded up to the NN panel height. */
  COP: 27,
  CO: 28,
  H: 29,
  W: 30,
  SCRATCH: 31,
  /** Bands of TB tiles; output channels per job (a multiple of the panel height). */
  BANDS: 32,
  CO_STEP: 33,
  /** The unpadded input [Ci][H][W] that `wino_pad` copies into X. */
  SRC: 34,
} as const;

/**
 * wino_pad(ch): channel ch of the unpadded input at SRC [Ci][H][W] into the padded layout at X
 * [Ci][H + 2][W + 4] (row y at padded row y + 1, from column 1; zeros around it), so that the band
 * jobs read whole patches without edge cases. One job per channel, so every thread pads its share;
 * W must be a multiple of 4. The zero vector after each row ends on the next row's column 0, which
 * is zero too, so channels never write each other's bytes.
 */
export function winogradPad(): Fn {
  const f = new Fn("wino_pad", 1);
  const ch = 0;
  const slot = (s: number) => f.i32_const(0).i32_load(4 * s);
  const [H, W, src, dst, y, x, end] = Array.from({ length: 7 }, () => f.local(I32));
  const zeros = f.local(V128);
  slot(WG.H).local_set(H), slot(WG.W).local_set(W);
  f.f32x4_const(0).local_set(zeros);
  // src = SRC + ch·H·W·4; dst = X + ch·(H + 2)·(W + 4)·4
  slot(WG.SRC).local_get(ch).local_get(H).i32_mul().local_get(W).i32_mul().i32_const(4).i32_mul().i32_add()
    .local_set(src);
  slot(WG.X).local_get(ch).local_get(H).i32_const(2).i32_add().i32_mul().local_get(W).i32_const(4).i32_add()
    .i32_mul().i32_const(4).i32_mul().i32_add().local_set(dst);
  /** Zeros over one padded row at dst, then dst to the next row. */
  const zeroRow = () => {
    f.local_get(dst).local_get(W).i32_const(4).i32_add().i32_const(4).i32_mul().i32_add().local_set(end);
    f.for(x, () => f.local_get(dst), () => f.local_get(end), 16, () => f.local_get(x).local_get(zeros).v128_store());
    f.local_get(end).local_set(dst);
  };
  zeroRow();
  f.for(y, () => f.i32_const(0), () => f.local_get(H), 1, () => {
    // column 0, the row from column 1, then columns W + 1 .. W + 4 (W + 4: the next row's column 0)
    f.local_get(dst).f32_const(0).f32_store();
    f.local_get(src).local_get(W).i32_const(4).i32_mul().i32_add().local_set(end);
    f.for(x, () => f.local_get(src), () => f.local_get(end), 16, () => {
      f.local_get(dst).local_get(x).v128_load().v128_store(4);
      f.local_get(dst).i32_const(16).i32_add().local_set(dst);
    });
    f.local_get(dst).local_get(zeros).v128_store(4);
    f.local_get(dst).i32_const(16).i32_add().local_set(dst);
    f.local_get(end).local_set(src);
  });
  zeroRow();
  return f;
}

/** Scratch bytes per thread: V [16][Ci][TB] and M [16][Cop][TB]. */
export const winogradScratch = (ci: number, cop: number): number => 16 * (ci + cop) * TB * 4;

/** The locals and control-block reads a band job of F(m×m, 3×3) starts with. */
interface BandJob {
  readonly f: Fn;
  /** (m + 2)²: the points ξ, one GEMM each. */
  readonly points: number;
  /** Pushes control-block slot s. */
  readonly slot: (s: number) => Fn;
  /**
   * For each group of 4 tiles g = t0, t0 + 4, … < tEnd (lane j: tile g + j): ty, tx, rowB, p (the
   * group's padded input, channel 0) and q (its column of V) set, then `body`.
   */
  readonly inputGroups: (body: () => void) => void;
  /**
   * For each output channel k of [c0, min(c1, Co)) (`bias` splat) and each group of 4 tiles: ty, tx and q
   * (the group's column of M, channel k) set and the points' products loaded into `m`, then `body`.
   */
  readonly outputGroups: (m: readonly number[], bias: number, body: () => void) => void;
  readonly ci: number;
  readonly cop: number;
  readonly H: number;
  readonly W: number;
  /** This band's output channels [c0, c1). */
  readonly c0: number;
  readonly c1: number;
  /** This thread's V [points][Ci][TB] and M [points][Cop][TB]. */
  readonly vAt: number;
  readonly mAt: number;
  // scratch locals of the transforms
  readonly p: number;
  readonly q: number;
  readonly c: number;
  readonly xi: number;
  readonly rowB: number;
  readonly ty: number;
  readonly tx: number;
  readonly k: number;
  /** This band's tiles [t0, tEnd). */
  readonly t0: number;
  readonly tEnd: number;
}

/**
 * `name`(job, thread) for tiles of m×m pixels: band job mod BANDS, output channels [c0, c1) with
 * c0 = ⌊job / BANDS⌋·CO_STEP (c1 = min(c0 + CO_STEP, Cop)), tiles [t0, tEnd) = [band·TB, min(t0 + TB,
 * total)), and the thread's V and M.
 */
function bandJob(name: string, m: 2 | 4): BandJob {
  const f = new Fn(name, 2);
  const [job, thread] = [0, 1];
  const points = (m + 2) ** 2, shift = Math.log2(m);
  const slot = (s: number) => f.i32_const(0).i32_load(4 * s);
  const [ci, cop, co, H, W, tpr, total, t0, tEnd, g] = Array.from({ length: 10 }, () => f.local(I32));
  const [vAt, mAt, p, q, c, xi, rowB, ty, tx, k] = Array.from({ length: 10 }, () => f.local(I32));
  const [c0, c1, band] = [f.local(I32), f.local(I32), f.local(I32)];
  slot(WG.CI).local_set(ci), slot(WG.COP).local_set(cop), slot(WG.CO).local_set(co);
  slot(WG.H).local_set(H), slot(WG.W).local_set(W);
  f.local_get(W).i32_const(shift).i32_shr_u().local_set(tpr);
  f.local_get(H).i32_const(shift).i32_shr_u().local_get(tpr).i32_mul().local_set(total);
  f.local_get(job).i32_const(0).i32_load(4 * WG.BANDS).i32_rem_u().local_set(band);
  f.local_get(job).i32_const(0).i32_load(4 * WG.BANDS).i32_div_u().i32_const(0).i32_load(4 * WG.CO_STEP).i32_mul()
    .local_set(c0);
  f.local_get(c0).i32_const(0).i32_load(4 * WG.CO_STEP).i32_add().local_tee(c1).local_get(cop);
  f.local_get(c1).local_get(cop).i32_lt_s().select().local_set(c1);
  f.local_get(band).i32_const(TB).i32_mul().local_set(t0);
  f.local_get(t0).i32_const(TB).i32_add().local_get(total);
  f.local_get(t0).i32_const(TB).i32_add().local_get(total).i32_lt_s().select().local_set(tEnd);
  slot(WG.SCRATCH).local_get(thread).local_get(ci).local_get(cop).i32_add().i32_const(points * TB * 4).i32_mul()
    .i32_mul().i32_add().local_set(vAt);
  f.local_get(vAt).local_get(ci).i32_const(points * TB * 4).i32_mul().i32_add().local_set(mAt);
  const rowBytes = () => f.local_get(W).i32_const(4).i32_add().i32_const(4).i32_mul();
  const inputGroups = (body: () => void) =>
    f.for(g, () => f.local_get(t0), () => f.local_get(tEnd), 4, () => {
      f.local_get(g).local_get(tpr).i32_div_u().local_set(ty);
      f.local_get(g).local_get(tpr).i32_rem_u().local_set(tx);
      rowBytes().local_set(rowB);
      // p = x + ((m·ty)·(W + 4) + m·tx)·4 for channel 0; q = V + (g − t0)·4
      slot(WG.X).local_get(ty).i32_const(shift).i32_shl().local_get(rowB).i32_mul().i32_add();
      f.local_get(tx).i32_const(4 * m).i32_mul().i32_add().local_set(p);
      f.local_get(vAt).local_get(g).local_get(t0).i32_sub().i32_const(4).i32_mul().i32_add().local_set(q);
      body();
    });
  const outputGroups = (m: readonly number[], bias: number, body: () => void) => {
    // channels [c0, min(c1, Co))
    f.local_get(c1).local_get(co).local_get(c1).local_get(co).i32_lt_s().select().local_set(c1);
    f.for(k, () => f.local_get(c0), () => f.local_get(c1), 1, () => {
      slot(WG.BIAS).local_get(k).i32_const(4).i32_mul().i32_add().v128_load32_splat().local_set(bias);
      f.for(g, () => f.local_get(t0), () => f.local_get(tEnd), 4, () => {
        f.local_get(g).local_get(tpr).i32_div_u().local_set(ty);
        f.local_get(g).local_get(tpr).i32_rem_u().local_set(tx);
        // q = M + (k·TB + g − t0)·4; ξ slices are Cop·TB·4 bytes apart
        f.local_get(mAt).local_get(k).i32_const(TB).i32_mul().local_get(g).i32_add().local_get(t0).i32_sub()
          .i32_const(4).i32_mul().i32_add().local_set(q);
        m.forEach((l, x) => {
          f.local_get(q).local_get(cop).i32_const(x * TB * 4).i32_mul().i32_add().v128_load().local_set(l);
        });
        body();
      });
    });
  };
  return {
    f,
    points,
    slot,
    inputGroups,
    outputGroups,
    ci,
    cop,
    H,
    W,
    c0,
    c1,
    vAt,
    mAt,
    p,
    q,
    c,
    xi,
    rowB,
    ty,
    tx,
    k,
    t0,
    tEnd,
  };
}

/**
 * The band's GEMMs: M[ξ] [Cop, TB] = U[ξ] [Cop, Ci] · V[ξ] [Ci, TB] for every point ξ, rows [c0, c1),
 * over the band's tiles rounded up to the kernel's 8 columns (a short last band, or a small image's
 * only band, does not pay for TB; the columns past tEnd are computed from stale V and never read).
 */
function bandGemms(j: BandJob, nn: number): void {
  const { f, slot, xi, cop, c0, c1, ci, vAt, mAt, t0, tEnd } = j;
  f.for(xi, () => f.i32_const(0), () => f.i32_const(j.points), 1, () => {
    // U[ξ] rows from c0: U + (ξ·Cop + c0)·Ci·4; M[ξ] rows from c0: M + (ξ·Cop + c0)·TB·4
    slot(WG.U).local_get(xi).local_get(cop).i32_mul().local_get(c0).i32_add().local_get(ci).i32_mul().i32_const(4)
      .i32_mul().i32_add();
    f.local_get(vAt).local_get(xi).local_get(ci).i32_mul().i32_const(TB * 4).i32_mul().i32_add();
    f.i32_const(0);
    f.local_get(mAt).local_get(xi).local_get(cop).i32_mul().local_get(c0).i32_add().i32_const(TB * 4).i32_mul()
      .i32_add();
    f.local_get(ci).i32_const(TB * 4).i32_const(TB * 4);
    f.i32_const(0).local_get(c1).local_get(c0).i32_sub().i32_const(0);
    f.local_get(tEnd).local_get(t0).i32_sub().i32_const(7).i32_add().i32_const(-8).i32_and();
    f.call(nn);
  });
}

/**
 * wino(job, thread): band job mod BANDS, output channels [c0, c1) with c0 = ⌊job / BANDS⌋·CO_STEP, of
 * the convolution described in the control block, with the thread's scratch; `nn` is the index of
 * the NN GEMM driver (gemm_module.ts). Splitting the channels lets small images (few bands) use
 * every thread, each reading only its share of U.
 */
export function winogradJob(nn: number): Fn {
  const j = bandJob("wino", 2);
  const { f, slot, ci, H, W, p, q, c, xi, rowB, ty, tx, k } = j;

  // --- input transform: groups of 4 tiles g = t0, t0 + 4, … < tEnd
  const d = Array.from({ length: 16 }, () => f.local(V128)); // d[4i + c], then e = d·B in place
  const L = [f.local(V128), f.local(V128), f.local(V128)];
  const T = f.local(V128);
  j.inputGroups(() => {
    f.for(c, () => f.i32_const(0), () => f.local_get(ci), 1, () => {
      for (let i = 0; i < 4; i++) {
        // floats 0..11 of padded row 2ty + i from column 2tx: tile j reads columns 2j .. 2j + 3
        f.local_get(p).local_get(rowB).i32_const(i).i32_mul().i32_add().local_set(xi);
        L.forEach((l, n) => f.local_get(xi).v128_load(16 * n).local_set(l));
        const [d0, d1, d2, d3] = [0, 1, 2, 3].map((j) => d[4 * i + j]!);
        f.local_get(L[0]!).local_get(L[1]!).f32x4_shuffle(0, 2, 4, 6).local_set(d0!); // 0 2 4 6
        f.local_get(L[0]!).local_get(L[1]!).f32x4_shuffle(1, 3, 5, 7).local_set(d1!); // 1 3 5 7
        f.local_get(L[1]!).local_get(L[2]!).f32x4_shuffle(0, 2, 4, 6).local_set(T); // 4 6 8 10
        f.local_get(d0!).local_get(T).f32x4_shuffle(1, 2, 3, 6).local_set(d2!); // 2 4 6 8
        f.local_get(L[1]!).local_get(L[2]!).f32x4_shuffle(1, 3, 5, 7).local_set(T); // 5 7 9 11
        f.local_get(d1!).local_get(T).f32x4_shuffle(1, 2, 3, 6).local_set(d3!); // 3 5 7 9
        // e = d·B along the row: (d0 − d2, d1 + d2, d2 − d1, d1 − d3)
        f.local_get(d0!).local_get(d2!).f32x4_sub().local_set(d0!);
        f.local_get(d1!).local_get(d3!).f32x4_sub().local_set(d3!);
        f.local_get(d2!).local_get(d1!).f32x4_sub().local_set(T);
        f.local_get(d1!).local_get(d2!).f32x4_add().local_set(d1!);
        f.local_get(T).local_set(d2!);
      }
      // V = Bᵀ·e down the columns; V[ξ = 4i + j] at q + ((ξ·Ci + c)·TB)·4
      for (let j = 0; j < 4; j++) {
        const [e0, e1, e2, e3] = [0, 1, 2, 3].map((i) => d[4 * i + j]!);
        const store = (xiv: number, a: number, b: number, add: boolean) => {
          f.local_get(q).local_get(ci).i32_const(xiv * TB * 4).i32_mul().i32_add();
          f.local_get(a).local_get(b);
          if (add) f.f32x4_add();
          else f.f32x4_sub();
          f.v128_store();
        };
        store(j, e0!, e2!, false);
        store(4 + j, e1!, e2!, true);
        store(8 + j, e2!, e1!, false);
        store(12 + j, e1!, e3!, false);
      }
      f.local_get(q).i32_const(TB * 4).i32_add().local_set(q);
      f.local_get(p).local_get(H).i32_const(2).i32_add().local_get(rowB).i32_mul().i32_add().local_set(p);
    });
  });

  bandGemms(j, nn);

  // --- output transform: out[co][2ty + r][2tx .. 2tx + 8) for each group of 4 tiles
  const m = Array.from({ length: 16 }, () => f.local(V128));
  const s = Array.from({ length: 8 }, () => f.local(V128));
  const bias = f.local(V128), y = [f.local(V128), f.local(V128), f.local(V128), f.local(V128)];
  j.outputGroups(m, bias, () => {
    // s0[j] = m0j + m1j + m2j, s1[j] = m1j − m2j − m3j (rows of Aᵀ M)
    for (let j = 0; j < 4; j++) {
      f.local_get(m[j]!).local_get(m[4 + j]!).f32x4_add().local_get(m[8 + j]!).f32x4_add().local_set(s[j]!);
      f.local_get(m[4 + j]!).local_get(m[8 + j]!).f32x4_sub().local_get(m[12 + j]!).f32x4_sub().local_set(s[4 + j]!);
    }
    // y[2r] = s_r0 + s_r1 + s_r2 + b, y[2r + 1] = s_r1 − s_r2 − s_r3 + b
    for (let r = 0; r < 2; r++) {
      const [a0, a1, a2, a3] = [0, 1, 2, 3].map((j) => s[4 * r + j]!);
      f.local_get(a0!).local_get(a1!).f32x4_add().local_get(a2!).f32x4_add().local_get(bias).f32x4_add();
      f.local_set(y[2 * r]!);
      f.local_get(a1!).local_get(a2!).f32x4_sub().local_get(a3!).f32x4_sub().local_get(bias).f32x4_add();
      f.local_set(y[2 * r + 1]!);
    }
    // p = out + ((k·H + 2ty)·W + 2tx)·4; each row stores (y0 y1 interleaved) as two vectors
    slot(WG.OUT).local_get(k).local_get(H).i32_mul().local_get(ty).i32_const(1).i32_shl().i32_add()
      .local_get(W).i32_mul().local_get(tx).i32_const(1).i32_shl().i32_add().i32_const(4).i32_mul().i32_add()
      .local_set(p);
    for (let r = 0; r < 2; r++) {
      f.local_get(p).local_get(W).i32_const(4 * r).i32_mul().i32_add().local_set(xi);
      f.local_get(xi).local_get(y[2 * r]!).local_get(y[2 * r + 1]!).f32x4_shuffle(0, 4, 1, 5).v128_store();
      f.local_get(xi).local_get(y[2 * r]!).local_get(y[2 * r + 1]!).f32x4_shuffle(2, 6, 3, 7).v128_store(16);
    }
  });
  return f;
}

/**
 * wino_u(w, Co, Ci, cop, dst): U = G g Gᵀ of every 3×3 kernel g = w[co, ci] (float32), stored as
 * NN panels per ξ = 4i + j: dst[ξ][co / MR][ci][co mod MR] (rows ≥ Co are left as they are: the
 * host zeroes them).
 */
export function winogradWeights(mr: number): Fn {
  const f = new Fn("wino_u", 5);
  const [w, Co, Ci, cop, dst] = [0, 1, 2, 3, 4];
  const co = f.local(I32), ci = f.local(I32), src = f.local(I32), at = f.local(I32);
  const g = Array.from({ length: 9 }, () => f.local(F32));
  const t = Array.from({ length: 12 }, () => f.local(F32));
  f.local_get(w).local_set(src);
  f.for(co, () => f.i32_const(0), () => f.local_get(Co), 1, () => {
    f.for(ci, () => f.i32_const(0), () => f.local_get(Ci), 1, () => {
      g.forEach((l, i) => f.local_get(src).f32_load(4 * i).local_set(l));
      // t = G g: rows (g0, (g0 + g1 + g2)/2, (g0 − g1 + g2)/2, g2) per column c
      for (let c = 0; c < 3; c++) {
        const [g0, g1, g2] = [g[c]!, g[3 + c]!, g[6 + c]!];
        f.local_get(g0).local_set(t[c]!);
        f.local_get(g0).local_get(g1).f32_add().local_get(g2).f32_add().f32_const(0.5).f32_mul().local_set(t[3 + c]!);
        f.local_get(g0).local_get(g1).f32_sub().local_get(g2).f32_add().f32_const(0.5).f32_mul().local_set(t[6 + c]!);
        f.local_get(g2).local_set(t[9 + c]!);
      }
      // at = dst + ((co / MR)·Ci + ci)·MR·4 + (co mod MR)·4; ξ slices are cop·Ci·4 bytes apart
      f.local_get(dst).local_get(co).i32_const(mr).i32_div_u().local_get(Ci).i32_mul().local_get(ci).i32_add();
      f.i32_const(mr * 4).i32_mul().i32_add().local_get(co).i32_const(mr).i32_rem_u().i32_const(4).i32_mul();
      f.i32_add().local_set(at);
      for (let i = 0; i < 4; i++) {
        const [r0, r1, r2] = [t[3 * i]!, t[3 * i + 1]!, t[3 * i + 2]!];
        const put = (j: number, value: () => void) => {
          f.local_get(at).local_get(cop).local_get(Ci).i32_mul().i32_const(4 * (4 * i + j)).i32_mul().i32_add();
          value();
          f.f32_store();
        };
        put(0, () => f.local_get(r0));
        put(1, () => f.local_get(r0).local_get(r1).f32_add().local_get(r2).f32_add().f32_const(0.5).f32_mul());
        put(2, () => f.local_get(r0).local_get(r1).f32_sub().local_get(r2).f32_add().f32_const(0.5).f32_mul());
        put(3, () => f.local_get(r2));
      }
      f.local_get(src).i32_const(36).i32_add().local_set(src);
    });
  });
  return f;
}

/**
 * Winograd F(4×4, 3×3): the same band job with 4×4-pixel tiles read from 6×6 patches, 36 GEMMs
 * [Co, Ci]·[Ci, TB] and 2.25 multiplications per output pixel and channel pair instead of four:
 *
 *   Bᵀ = [[4,0,−5,0,1,0],[0,−4,−4,1,1,0],[0,4,−4,−1,1,0],[0,−2,−1,2,1,0],[0,2,−1,−2,1,0],[0,4,0,−5,0,1]]
 *   Aᵀ = [[1,1,1,1,1,0],[0,1,−1,2,−2,0],[0,1,1,4,4,0],[0,1,−1,8,−8,1]]
 *
 * (U = G g Gᵀ is computed by the host in float64, `winograd4Weights` in conv.ts.) Requirements
 * (checked by the host): H a multiple of 4, W a multiple of 16, the input zero-padded to
 * [Ci][H + 2][W + 4]. Control-block slots as `winogradJob`; scratch `winograd4Scratch`.
 */
export function winograd4Job(nn: number): Fn {
  const j = bandJob("wino4", 4);
  const { f, slot, ci, H, W, p, q, c, xi, rowB, ty, tx, k } = j;
  const v = () => f.local(V128);
  const t = Array.from({ length: 4 }, v);
  /** out[0..5] = Bᵀ·d for six vectors (each of the two levels rounds every term at most twice). */
  const bt = (d: readonly number[], out: readonly number[]) => {
    const [d0, d1, d2, d3, d4, d5] = d as [number, number, number, number, number, number];
    const [t0v, t1v, t2v, t3v] = t as [number, number, number, number];
    f.local_get(d1).local_get(d2).f32x4_add().local_set(t0v); // d1 + d2
    f.local_get(d1).local_get(d2).f32x4_sub().local_set(t1v); // d1 − d2
    f.local_get(d4).local_get(d2).f32x4_sub().local_set(t2v); // d4 − d2
    f.local_get(d3).local_get(d1).f32x4_sub().local_set(t3v); // d3 − d1
    const four = () => f.f32x4_const(4).f32x4_mul(), five = () => f.f32x4_const(5).f32x4_mul();
    // e0 = (4d0 + d4) − 5d2; e5 = (4d1 + d5) − 5d3
    f.local_get(d0), four(), f.local_get(d4).f32x4_add().local_get(d2), five(), f.f32x4_sub().local_set(out[0]!);
    f.local_get(d1), four(), f.local_get(d5).f32x4_add().local_get(d3), five(), f.f32x4_sub().local_set(out[5]!);
    // e1 = (d3 + d4) − 4(d1 + d2); e2 = (d4 − d3) + 4(d1 − d2)
    f.local_get(d3).local_get(d4).f32x4_add().local_get(t0v), four(), f.f32x4_sub().local_set(out[1]!);
    f.local_get(d4).local_get(d3).f32x4_sub().local_get(t1v), four(), f.f32x4_add().local_set(out[2]!);
    // e3 = (d4 − d2) + 2(d3 − d1); e4 = (d4 − d2) − 2(d3 − d1)
    f.local_get(t3v).local_get(t3v).f32x4_add().local_set(t3v);
    f.local_get(t2v).local_get(t3v).f32x4_add().local_set(out[3]!);
    f.local_get(t2v).local_get(t3v).f32x4_sub().local_set(out[4]!);
  };

  // --- input transform: groups of 4 tiles g = t0, t0 + 4, … < tEnd (lane j: tile g + j)
  const e = Array.from({ length: 36 }, v); // e[6i + j]: row i of the patch after the row transform
  const L = Array.from({ length: 5 }, v);
  const d = Array.from({ length: 6 }, v);
  const col = Array.from({ length: 6 }, v);
  j.inputGroups(() => {
    f.for(c, () => f.i32_const(0), () => f.local_get(ci), 1, () => {
      for (let i = 0; i < 6; i++) {
        // floats 0..19 of padded row 4ty + i from column 4tx: tile j reads columns 4j .. 4j + 5
        f.local_get(p).local_get(rowB).i32_const(i).i32_mul().i32_add().local_set(xi);
        L.forEach((l, n) => f.local_get(xi).v128_load(16 * n).local_set(l));
        const [L0, L1, L2, L3, L4] = L as [number, number, number, number, number];
        const [A, B] = [t[0]!, t[1]!];
        f.local_get(L0).local_get(L1).f32x4_shuffle(0, 4, 1, 5).local_set(A); // 0 4 1 5
        f.local_get(L2).local_get(L3).f32x4_shuffle(0, 4, 1, 5).local_set(B); // 8 12 9 13
        f.local_get(A).local_get(B).f32x4_shuffle(0, 1, 4, 5).local_set(d[0]!); // 0 4 8 12
        f.local_get(A).local_get(B).f32x4_shuffle(2, 3, 6, 7).local_set(d[1]!); // 1 5 9 13
        f.local_get(L0).local_get(L1).f32x4_shuffle(2, 6, 3, 7).local_set(A); // 2 6 3 7
        f.local_get(L2).local_get(L3).f32x4_shuffle(2, 6, 3, 7).local_set(B); // 10 14 11 15
        f.local_get(A).local_get(B).f32x4_shuffle(0, 1, 4, 5).local_set(d[2]!); // 2 6 10 14
        f.local_get(A).local_get(B).f32x4_shuffle(2, 3, 6, 7).local_set(d[3]!); // 3 7 11 15
        f.local_get(d[0]!).local_get(L4).f32x4_shuffle(1, 2, 3, 4).local_set(d[4]!); // 4 8 12 16
        f.local_get(d[1]!).local_get(L4).f32x4_shuffle(1, 2, 3, 5).local_set(d[5]!); // 5 9 13 17
        bt(d, e.slice(6 * i, 6 * i + 6));
      }
      // V = Bᵀ·e down the columns; V[ξ = 6a + j] at q + ((ξ·Ci + c)·TB)·4
      for (let j = 0; j < 6; j++) {
        bt([0, 1, 2, 3, 4, 5].map((i) => e[6 * i + j]!), col);
        col.forEach((l, a) => {
          f.local_get(q).local_get(ci).i32_const((6 * a + j) * TB * 4).i32_mul().i32_add().local_get(l).v128_store();
        });
      }
      f.local_get(q).i32_const(TB * 4).i32_add().local_set(q);
      f.local_get(p).local_get(H).i32_const(2).i32_add().local_get(rowB).i32_mul().i32_add().local_set(p);
    });
  });

  bandGemms(j, nn);

  // --- output transform: out[co][4ty + r][4tx .. 4tx + 16) for each group of 4 tiles
  const m = Array.from({ length: 36 }, v);
  const s = Array.from({ length: 24 }, v); // s[6r + j] = (Aᵀ M)[r][j]
  const y = Array.from({ length: 4 }, v);
  const bias = v();
  /** out[0..3] = Aᵀ·x for six vectors (every term rounded at most three times). */
  const at = (x: readonly number[], out: readonly number[], b?: number) => {
    const [x0, x1, x2, x3, x4, x5] = x as [number, number, number, number, number, number];
    const [a, bb, cc, dd] = t as [number, number, number, number];
    f.local_get(x1).local_get(x2).f32x4_add().local_set(a);
    f.local_get(x1).local_get(x2).f32x4_sub().local_set(bb);
    f.local_get(x3).local_get(x4).f32x4_add().local_set(cc);
    f.local_get(x3).local_get(x4).f32x4_sub().local_set(dd);
    const plusBias = () => b !== undefined && f.local_get(b).f32x4_add();
    f.local_get(x0).local_get(a).f32x4_add().local_get(cc).f32x4_add(), plusBias(), f.local_set(out[0]!);
    f.local_get(bb).local_get(dd).f32x4_const(2).f32x4_mul().f32x4_add(), plusBias(), f.local_set(out[1]!);
    f.local_get(a).local_get(cc).f32x4_const(4).f32x4_mul().f32x4_add(), plusBias(), f.local_set(out[2]!);
    f.local_get(bb).local_get(dd).f32x4_const(8).f32x4_mul().f32x4_add().local_get(x5).f32x4_add(), plusBias();
    f.local_set(out[3]!);
  };
  j.outputGroups(m, bias, () => {
    for (let j = 0; j < 6; j++) {
      at(
        [0, 1, 2, 3, 4, 5].map((i) => m[6 * i + j]!),
        [0, 1, 2, 3].map((r) => s[6 * r + j]!),
      );
    }
    // p = out + ((k·H + 4ty)·W + 4tx)·4
    slot(WG.OUT).local_get(k).local_get(H).i32_mul().local_get(ty).i32_const(2).i32_shl().i32_add()
      .local_get(W).i32_mul().local_get(tx).i32_const(2).i32_shl().i32_add().i32_const(4).i32_mul().i32_add()
      .local_set(p);
    for (let r = 0; r < 4; r++) {
      at(s.slice(6 * r, 6 * r + 6), y, bias); // y[c'] lane j: pixel (4ty + r, 4(tx + j) + c')
      // transpose: store tile j's 4 pixels of row r at p + r·W·4 + 16j
      const [A, B, C, D] = [m[0]!, m[1]!, m[2]!, m[3]!]; // m is free once s is formed
      f.local_get(y[0]!).local_get(y[1]!).f32x4_shuffle(0, 4, 1, 5).local_set(A);
      f.local_get(y[2]!).local_get(y[3]!).f32x4_shuffle(0, 4, 1, 5).local_set(B);
      f.local_get(y[0]!).local_get(y[1]!).f32x4_shuffle(2, 6, 3, 7).local_set(C);
      f.local_get(y[2]!).local_get(y[3]!).f32x4_shuffle(2, 6, 3, 7).local_set(D);
      f.local_get(p).local_get(W).i32_const(4 * r).i32_mul().i32_add().local_set(xi);
      f.local_get(xi).local_get(A).local_get(B).f32x4_shuffle(0, 1, 4, 5).v128_store();
      f.local_get(xi).local_get(A).local_get(B).f32x4_shuffle(2, 3, 6, 7).v128_store(16);
      f.local_get(xi).local_get(C).local_get(D).f32x4_shuffle(0, 1, 4, 5).v128_store(32);
      f.local_get(xi).local_get(C).local_get(D).f32x4_shuffle(2, 3, 6, 7).v128_store(48);
    }
  });
  return f;
}

/** Scratch bytes per thread of F(4×4, 3×3): V [36][Ci][TB] and M [36][Cop][TB]. */
export const winograd4Scratch = (ci: number, cop: number): number => 36 * (ci + cop) * TB * 4;
