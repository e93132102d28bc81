/**
 * @file Fused exact attention in WebAssembly SIMD128, one job per (head, block of ≤ QB queries
 * sharing one key range), in the style of flash attention: for each block of ≤ KB keys,
 *
 *   S[r, j] = scale · q[r] · kᵀ[:, j]          (`nn_scale`, S in per-thread scratch)
 *   m' = max(m, max_j S[r, j]), α = exp(m − m'), P = exp(S − m'), l = α·l + Σ_j P, O[r] *= α   (`online`)
 *   O[r] += P[r] · v[j]                         (`nn_add`, O is the job's rows of the output)
 *
 * and finally O[r] /= l[r]. Only S [QB, KB] and m, l [QB] live in scratch; the logits of a row are
 * never all held at once. Both products are "NN" register tiles: RM rows × RV vectors of 4
 * columns, A read one scalar at a time (splat), B one 4-column vector at a time, so there are no
 * horizontal sums. Keys are therefore stored transposed, in panels: keys [p·KB, (p + 1)·KB) of a
 * head form kᵀ [D, KB] (a short row stride: a large power-of-two-like stride thrashes L1 sets),
 * and key blocks end at panel boundaries. v rows are padded to Dvp = Dv rounded up to 4.
 *
 * Job record (i32 × 7, byte addresses unless noted): q of the first query (rows of D), queries,
 * kᵀ panels of the head, v of the head (rows of Dvp), key range lo, hi (indices), output row of
 * the first query (rows of Dvp).
 */
import { F32, Fn, I32, V128 } from "./encode.ts";

/** Tiles and blocks of the attention kernels. */
export interface AttentionConfig {
  /** Rows per register tile. */
  readonly rm: number;
  /** 4-column vectors per register tile. */
  readonly rv: number;
  /** Queries per job, at most. */
  readonly qb: number;
  /** Keys per block and panel (a power of two, at least 4). */
  readonly kb: number;
}

/** Control-block slots (i32 indices) the attention kernels read; see `CTL` in gemm_module.ts. */
export interface AttentionSlots {
  readonly D: number;
  readonly DVP: number;
  readonly SCALE: number;
}

/** Bytes of one job record. */
export const JOB_BYTES = 28;

/** Scratch bytes per thread: S [qb, kb], m [qb], l [qb]. */
export function scratchBytes(cfg: AttentionConfig): number {
  return (cfg.qb * cfg.kb + 2 * cfg.qb) * 4;
}

/** Names of the attention functions, in module order (tiles: full, 1 row, 1 vector, 1 × 1). */
export function attentionNames(cfg: AttentionConfig): string[] {
  const { rm, rv } = cfg;
  const shapes = [[rm, rv], [1, rv], [rm, 1], [1, 1]];
  return [
    ...["scale", "add"].flatMap((e) => shapes.map(([r, v]) => `nn_${e}_${r}x${v}`)),
    "nn_scale",
    "nn_add",
    "online",
    "attn_job",
  ];
}

/** Cephes expf: e^r ≈ 1 + r + r²·P(r) on |r| ≤ ln 2 / 2, P of degree 5. */
export const EXP_P = [
  1.9875691500e-4,
  1.3981999507e-3,
  8.3334519073e-3,
  4.1665795894e-2,
  1.6666665459e-1,
  5.0000001201e-1,
];
/** 1.5·2²³: adding it rounds to an integer, kept in the low mantissa bits. */
const ROUND = 12582912;
/** Below this, 2ⁿ would leave the normal range: exp gives 0. */
const EXP_MIN = -87.33654;

/** The v128 constants of `emitExp` in locals, set once before a loop (no rematerialising). */
export interface ExpConsts {
  readonly log2e: number;
  readonly round: number;
  readonly c1: number;
  readonly c2: number;
  readonly p: readonly number[];
  readonly one: number;
  readonly bias: number;
  readonly min: number;
}

/** Allocates and sets the locals of `ExpConsts`. */
export function expConsts(f: Fn): ExpConsts {
  const set = (x: number) => {
    const l = f.local(V128);
    f.f32x4_const(x).local_set(l);
    return l;
  };
  const k = {
    log2e: set(Math.LOG2E),
    round: set(ROUND),
    c1: set(0.693359375),
    c2: set(-2.12194440e-4),
    p: EXP_P.map(set),
    one: set(1),
    bias: f.local(V128),
    min: set(EXP_MIN),
  };
  f.i32x4_const(127 << 23).local_set(k.bias);
  return k;
}

/**
 * Pushes exp(x) of the f32x4 in local `x` (Cephes expf): x = n·ln 2 + r with n = round(x·log₂e)
 * (by adding 1.5·2²³) and ln 2 split in two (n·C1 is exact), e^r by the polynomial, 2ⁿ built from
 * the exponent bits (n + 127) << 23, taken from the rounded sum by a shift. Lanes below −87.33
 * (and −∞) give 0, NaN stays NaN. `t` and `r` are scratch v128 locals. Multiply-adds are fused
 * when `relaxed` (then results may differ by an ulp between hosts).
 */
export function emitExp(f: Fn, k: ExpConsts, relaxed: boolean, x: number, t: number, r: number): void {
  /** top·b + c */
  const madd = (b: () => void, c: number) => {
    if (relaxed) b(), f.local_get(c).f32x4_relaxed_madd();
    else b(), f.f32x4_mul().local_get(c).f32x4_add();
  };
  f.local_get(x), madd(() => f.local_get(k.log2e), k.round), f.local_set(t);
  // r = x − n·C1 − n·C2, n = t − ROUND
  f.local_get(x).local_get(t).local_get(k.round).f32x4_sub().local_tee(r).local_get(k.c1).f32x4_mul().f32x4_sub();
  f.local_get(r).local_get(k.c2).f32x4_mul().f32x4_sub().local_set(r);
  f.local_get(k.p[0]!);
  for (const c of k.p.slice(1)) madd(() => f.local_get(r), c);
  // P·r² + r + 1
  f.local_get(r).local_get(r).f32x4_mul().f32x4_mul().local_get(r).f32x4_add().local_get(k.one).f32x4_add();
  f.local_get(t).i32_const(23).i32x4_shl().local_get(k.bias).i32x4_add().f32x4_mul();
  f.local_get(x).local_get(k.min).f32x4_lt().v128_andnot();
}

/**
 * nn_<epi>_<rm>x<rv>(pa, sa, pb, sb, pc, sc, K): C[rm, 4·rv] = A[rm, K] · B[K, 4·rv] with row
 * strides sa, sb, sc (bytes); "scale" stores scale·AB, "add" adds AB to C.
 */
function nnTile(rm: number, rv: number, relaxed: boolean, epi: "scale" | "add", slots: AttentionSlots): Fn {
  const f = new Fn(`nn_${epi}_${rm}x${rv}`, 7);
  const [pa, sa, pb, sb, pc, sc, K] = [0, 1, 2, 3, 4, 5, 6];
  const ka = f.local(I32), end = f.local(I32), row = f.local(I32);
  const ar = Array.from({ length: rm }, () => f.local(I32));
  const ak = Array.from({ length: rm }, () => f.local(I32));
  const acc = Array.from({ length: rm * rv }, () => f.local(V128));
  const vb = Array.from({ length: rv }, () => f.local(V128));
  const va = f.local(V128), s = f.local(V128);
  /** One k step: B row at pb (then pb += sb), A column at ak[r] + offset. */
  const step = (offset: number) => {
    vb.forEach((l, c) => f.local_get(pb).v128_load(16 * c).local_set(l));
    ak.forEach((l, r) => {
      f.local_get(l).v128_load32_splat(offset).local_set(va);
      vb.forEach((b, c) => {
        const a = acc[r * rv + c]!;
        if (relaxed) f.local_get(va).local_get(b).local_get(a).f32x4_relaxed_madd().local_set(a);
        else f.local_get(a).local_get(va).local_get(b).f32x4_mul().f32x4_add().local_set(a);
      });
    });
    f.local_get(pb).local_get(sb).i32_add().local_set(pb);
  };
  const columns = () => ak.forEach((l, r) => f.local_get(ar[r]!).local_get(ka).i32_add().local_set(l));
  ar.forEach((l, r) => f.local_get(pa).local_get(sa).i32_const(r).i32_mul().i32_add().local_set(l));
  for (const l of acc) f.f32x4_const(0).local_set(l);
  // K in steps of 4 (A offsets as immediates), then the rest one by one
  f.local_get(K).i32_const(~3).i32_and().i32_const(4).i32_mul().local_set(end);
  f.for(ka, () => f.i32_const(0), () => f.local_get(end), 16, () => {
    columns();
    for (let u = 0; u < 4; u++) step(4 * u);
  });
  f.for(ka, null, () => f.local_get(K).i32_const(4).i32_mul(), 4, () => (columns(), step(0)));
  if (epi === "scale") f.i32_const(0).f32_load(4 * slots.SCALE).f32x4_splat().local_set(s);
  for (let r = 0; r < rm; r++) {
    f.local_get(pc).local_get(sc).i32_const(r).i32_mul().i32_add().local_set(row);
    for (let c = 0; c < rv; c++) {
      f.local_get(row);
      if (epi === "scale") f.local_get(acc[r * rv + c]!).local_get(s).f32x4_mul();
      else f.local_get(row).v128_load(16 * c).local_get(acc[r * rv + c]!).f32x4_add();
      f.v128_store(16 * c);
    }
  }
  return f;
}

/**
 * nn_<epi>(pa, sa, pb, sb, pc, sc, M, V, K): C[M, 4V] from A[M, K] · B[K, 4V] by tiles (column
 * tiles outer, so a strip of B stays in L1 while the rows of A pass). `first` indexes the tiles.
 */
function nnDriver(epi: "scale" | "add", cfg: AttentionConfig, first: number): Fn {
  const f = new Fn(`nn_${epi}`, 9);
  const [pa, sa, pb, sb, pc, sc, M, V, K] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const m = f.local(I32), v = f.local(I32);
  const { rm, rv } = cfg;
  const callTile = (index: number) => {
    f.local_get(pa).local_get(m).local_get(sa).i32_mul().i32_add().local_get(sa);
    f.local_get(pb).local_get(v).i32_const(16).i32_mul().i32_add().local_get(sb);
    f.local_get(pc).local_get(m).local_get(sc).i32_mul().i32_add().local_get(v).i32_const(16).i32_mul().i32_add();
    f.local_get(sc).local_get(K).call(index);
  };
  const rowsOf = (full: number, one: number) => {
    f.for(m, () => f.i32_const(0), () => f.local_get(M).i32_const(rm - 1).i32_sub(), rm, () => callTile(full));
    f.for(m, null, () => f.local_get(M), 1, () => callTile(one));
  };
  f.for(v, () => f.i32_const(0), () => f.local_get(V).i32_const(rv - 1).i32_sub(), rv, () => {
    rowsOf(first, first + 1);
  });
  f.for(v, null, () => f.local_get(V), 1, () => rowsOf(first + 2, first + 3));
  return f;
}

/** Pushes the horizontal `op` (f32x4_max or f32x4_add) of the v128 local `x` as an f32. */
function horizontal(f: Fn, x: number, op: "f32x4_max" | "f32x4_add"): void {
  f.local_get(x).local_get(x).local_get(x).f32x4_shuffle(2, 3, 0, 1)[op]().local_set(x);
  f.local_get(x).local_get(x).local_get(x).f32x4_shuffle(1, 0, 3, 2)[op]().f32x4_extract_lane(0);
}

/**
 * online(pS, sS, rows, cnt, pm, pl, pO, sO, V): the online-softmax step on the logits S [rows,
 * cnt] of one key block: S becomes P = exp(S − m'), l and m are updated, and the rows of O [rows,
 * 4V] are rescaled by α = exp(m − m') when the max moved. Columns cnt…⌈cnt⌉₄ of S are set to −∞
 * first, so they give P = 0. The block max skips NaN (pmax), but a NaN logit gives a NaN P and so a
 * NaN l; a row of only −∞ gives exp(−∞ + ∞) = NaN: non-finite rows end NaN, as in the row form.
 */
function online(relaxed: boolean): Fn {
  const f = new Fn("online", 9);
  const [pS, sS, rows, cnt, pm, pl, pO, sO, V] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const r = f.local(I32), row = f.local(I32), j = f.local(I32), end = f.local(I32), orow = f.local(I32);
  const mOld = f.local(F32), mNew = f.local(F32), alpha = f.local(F32);
  const acc = f.local(V128), mv = f.local(V128), x = f.local(V128), n = f.local(V128), t = f.local(V128);
  const k = expConsts(f);
  f.local_get(cnt).i32_const(3).i32_add().i32_const(~3).i32_and().i32_const(4).i32_mul().local_set(end);
  f.for(r, () => f.i32_const(0), () => f.local_get(rows), 1, () => {
    f.local_get(pS).local_get(r).local_get(sS).i32_mul().i32_add().local_set(row);
    f.for(j, () => f.local_get(cnt).i32_const(4).i32_mul(), () => f.local_get(end), 4, () => {
      f.local_get(row).local_get(j).i32_add().f32_const(-Infinity).f32_store();
    });
    // m' = max(m, max_j S)
    f.f32x4_const(-Infinity).local_set(acc);
    f.for(j, () => f.i32_const(0), () => f.local_get(end), 16, () => {
      f.local_get(acc).local_get(row).local_get(j).i32_add().v128_load().f32x4_pmax().local_set(acc);
    });
    f.local_get(pm).local_get(r).i32_const(4).i32_mul().i32_add().local_tee(orow).f32_load().local_set(mOld);
    f.local_get(mOld), horizontal(f, acc, "f32x4_max"), f.f32_max().local_set(mNew);
    f.local_get(orow).local_get(mNew).f32_store();
    // P = exp(S − m'), Σ P
    f.local_get(mNew).f32x4_splat().local_set(mv);
    f.f32x4_const(0).local_set(acc);
    f.for(j, () => f.i32_const(0), () => f.local_get(end), 16, () => {
      f.local_get(row).local_get(j).i32_add().v128_load().local_get(mv).f32x4_sub().local_set(x);
      f.local_get(row).local_get(j).i32_add();
      emitExp(f, k, relaxed, x, n, t);
      f.local_tee(x).v128_store();
      f.local_get(acc).local_get(x).f32x4_add().local_set(acc);
    });
    // l = α·l + Σ P
    f.local_get(mOld).local_get(mNew).f32_sub().f32x4_splat().local_set(x);
    emitExp(f, k, relaxed, x, n, t);
    f.f32x4_extract_lane(0).local_set(alpha);
    f.local_get(pl).local_get(r).i32_const(4).i32_mul().i32_add().local_tee(orow);
    f.local_get(orow).f32_load().local_get(alpha).f32_mul();
    horizontal(f, acc, "f32x4_add"), f.f32_add().f32_store();
    // O[r] *= α when the max moved
    f.local_get(mNew).local_get(mOld).f32_ne().if(() => {
      f.local_get(alpha).f32x4_splat().local_set(mv);
      f.local_get(pO).local_get(r).local_get(sO).i32_mul().i32_add().local_set(orow);
      f.for(j, () => f.i32_const(0), () => f.local_get(V).i32_const(16).i32_mul(), 16, () => {
        f.local_get(orow).local_get(j).i32_add().local_get(orow).local_get(j).i32_add().v128_load();
        f.local_get(mv).f32x4_mul().v128_store();
      });
    });
  });
  return f;
}

/** attn_job(job, scratch): one job record (see the file comment), with this thread's scratch. */
function job(cfg: AttentionConfig, slots: AttentionSlots, at: (name: string) => number): Fn {
  const f = new Fn("attn_job", 2);
  const [jb, scratch] = [0, 1];
  const [q, rows, kT, v, lo, hi, o] = Array.from({ length: 7 }, () => f.local(I32));
  const pm = f.local(I32), pl = f.local(I32), j = f.local(I32), cnt = f.local(I32), i = f.local(I32);
  const sq = f.local(I32), so = f.local(I32), vecs = f.local(I32), row = f.local(I32), t = f.local(I32);
  const inv = f.local(V128);
  const { qb, kb } = cfg;
  [q, rows, kT, v, lo, hi, o].forEach((l, x) => f.local_get(jb).i32_load(4 * x).local_set(l));
  const slot = (s: number) => f.i32_const(0).i32_load(4 * s);
  slot(slots.D), f.i32_const(4).i32_mul().local_set(sq);
  slot(slots.DVP), f.i32_const(4).i32_mul().local_set(so);
  f.local_get(so).i32_const(16).i32_div_u().local_set(vecs);
  f.local_get(scratch).i32_const(qb * kb * 4).i32_add().local_tee(pm).i32_const(qb * 4).i32_add().local_set(pl);
  // m = −∞, l = 0, O = 0
  f.for(i, () => f.i32_const(0), () => f.local_get(rows).i32_const(4).i32_mul(), 4, () => {
    f.local_get(pm).local_get(i).i32_add().f32_const(-Infinity).f32_store();
    f.local_get(pl).local_get(i).i32_add().f32_const(0).f32_store();
  });
  f.for(i, () => f.i32_const(0), () => f.local_get(rows).local_get(so).i32_mul(), 16, () => {
    f.local_get(o).local_get(i).i32_add().f32x4_const(0).v128_store();
  });
  // key blocks [j, j + cnt) end at panel boundaries
  f.for(j, () => f.local_get(lo), () => f.local_get(hi), () => f.local_get(cnt), () => {
    // t = first key of j's panel; cnt = min(hi, t + kb) − j
    f.local_get(j).i32_const(-kb).i32_and().local_tee(t).i32_const(kb).i32_add().local_tee(cnt);
    f.local_get(hi).local_get(cnt).local_get(hi).i32_lt_s().select().local_get(j).i32_sub().local_set(cnt);
    f.local_get(q).local_get(sq);
    // kᵀ panel column: kT + 4·(t·D + j − t)
    f.local_get(kT).local_get(t), slot(slots.D), f.i32_mul().local_get(j).i32_add().local_get(t).i32_sub();
    f.i32_const(4).i32_mul().i32_add().i32_const(kb * 4);
    f.local_get(scratch).i32_const(kb * 4).local_get(rows).local_get(cnt).i32_const(3).i32_add().i32_const(4);
    f.i32_div_u();
    slot(slots.D), f.call(at("nn_scale"));
    f.local_get(scratch).i32_const(kb * 4).local_get(rows).local_get(cnt).local_get(pm).local_get(pl);
    f.local_get(o).local_get(so).local_get(vecs).call(at("online"));
    f.local_get(scratch).i32_const(kb * 4).local_get(v).local_get(j).local_get(so).i32_mul().i32_add();
    f.local_get(so).local_get(o).local_get(so).local_get(rows).local_get(vecs).local_get(cnt).call(at("nn_add"));
  });
  // O[r] /= l[r]
  f.for(i, () => f.i32_const(0), () => f.local_get(rows), 1, () => {
    f.f32_const(1).local_get(pl).local_get(i).i32_const(4).i32_mul().i32_add().f32_load().f32_div();
    f.f32x4_splat().local_set(inv);
    f.local_get(o).local_get(i).local_get(so).i32_mul().i32_add().local_set(row);
    f.for(j, () => f.i32_const(0), () => f.local_get(so), 16, () => {
      f.local_get(row).local_get(j).i32_add().local_get(row).local_get(j).i32_add().v128_load();
      f.local_get(inv).f32x4_mul().v128_store();
    });
  });
  return f;
}

/** The attention functions, in the order of `attentionNames`; `at` maps a name to its index. */
export function attentionFns(
  cfg: AttentionConfig,
  relaxed: boolean,
  slots: AttentionSlots,
  at: (name: string) => number,
): Fn[] {
  const { rm, rv } = cfg;
  const shapes = [[rm, rv], [1, rv], [rm, 1], [1, 1]] as const;
  return [
    ...(["scale", "add"] as const).flatMap((e) => shapes.map(([r, v]) => nnTile(r, v, relaxed, e, slots))),
    nnDriver("scale", cfg, at(`nn_scale_${rm}x${rv}`)),
    nnDriver("add", cfg, at(`nn_add_${rm}x${rv}`)),
    online(relaxed),
    job(cfg, slots, at),
  ];
}
