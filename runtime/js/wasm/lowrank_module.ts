/**
 * @file The WebAssembly SIMD128 low-rank attention kernels (runtime/js/lowrank.ts has the math):
 * with φ the monomials of degree ≤ g of a row (φ[0] = 1, φ[i] = φ[parent[i]]·x[variable[i]]),
 *
 *   accumulate job (keys k [n, D], values v [n, Dvp]):  P += Σ_j φ(k_j) [v_j | 1]   (P float64 [rp, Dvp + 1])
 *   read job (queries q [n, D], state S'ᵀ [wp, r]):      out_j = (S'ᵀφ(q_j))[:Dv] / (S'ᵀφ(q_j))[Dv]
 *
 * A job walks its rows in slabs of ≤ KB. Per slab, the rows are transposed into Xᵀ [D, KB] and the
 * features built four rows at a time as Fᵀ [r, KB] (one f32x4 multiply per monomial and 4 rows;
 * row 0 is 1 for the slab's rows and 0 for the padding up to a multiple of 16, so padded columns
 * are 0 throughout). Then a register-tiled product:
 *
 *   accumulate:  P[:, :Dvp] += Fᵀ [rp, K] · V [K, Dvp]   (float32 sums over the slab, added to float64 P)
 *                P[:, Dvp]  += Σ_j Fᵀ[:, j]                (row sums, taken while building F)
 *   read:        C [wp, K] = S'ᵀ [wp, r] · Fᵀ [r, K]      (float32 sums over blocks of READ_BLOCK
 *                                                         monomials, added; then C[:Dv] / C[Dv],
 *                                                         stored as rows of Dv)
 *
 * K is the slab's row count rounded up to 4. A slab is the unit of float32 summation on the
 * accumulate side: its keys' contributions are summed in float32 registers once, then added to P.
 *
 * Both products are "NN" tiles (one operand splat one scalar at a time, the other read as 4-column
 * vectors), so there are no horizontal sums. rp and wp are r and Dv + 1 rounded up to the tiles' row
 * count: the padding rows of F (never written) and of S'ᵀ (written as zeros) are zero.
 *
 * `run(thread)` claims jobs from the control block (like gemm_module.ts, but in this module's own
 * memory): the calling thread and the workers share one list of job records.
 */
import { encodeModule, Fn, I32, V128 } from "./encode.ts";

/** Rows of a slab (a multiple of 16). */
export const KB = 128;

/**
 * Accumulate tiles (monomial rows × 4-column vectors of V), by vectors per tile: one vector when
 * Dvp = 4, else strips of two vectors (and one for an odd count). Wider tiles spill registers.
 */
export const ACC_TILES: Readonly<Record<number, { rm: number; rv: number }>> = {
  1: { rm: 8, rv: 1 },
  2: { rm: 6, rv: 2 },
};

/** Monomials per float32 block of the read product (its sums are added across blocks). */
export const READ_BLOCK = 256;

/** Read tiles (state rows × 4-query vectors), by rows: the host takes the one that pads Dv + 1 least. */
export const READ_TILES: Readonly<Record<number, { rm: number; rv: number }>> = {
  3: { rm: 3, rv: 2 },
  6: { rm: 6, rv: 2 },
};

/** Control block at address 0 (i32 slots). */
export const LCTL = {
  /** Job counter; workers wait on it. */
  SEQ: 0,
  /** (job & 0x7fff) << 16 | next unclaimed record. */
  CLAIM: 1,
  /** Records finished; the last one notifies. */
  DONE: 2,
  TOTAL: 3,
  /** 0: accumulate, 1: read. */
  KIND: 4,
  /** Job records (16 bytes each). */
  JOBS: 5,
  /** Scratch of thread t at SCRATCH + t·SCRATCH_BYTES: Xᵀ [D, KB], Fᵀ [rp, KB], then V or C. */
  SCRATCH: 6,
  SCRATCH_BYTES: 7,
  D: 8,
  DV: 9,
  DVP: 10,
  /** Monomials, and their count rounded up to the accumulate tile's rows. */
  R: 11,
  RP: 12,
  /** State rows (Dv + 1 rounded up to the read tile's rows). */
  WP: 13,
  /** i32 pairs (parent row · KB · 4, variable row · KB · 4) of monomials 1..r−1. */
  TABLE: 14,
  /** Byte offsets of Fᵀ and of the V / C buffer within a thread's scratch (Xᵀ is at 0). */
  F: 15,
  BUF: 16,
  /** The accumulate tile (a key of ACC_TILES) and the read tile (a key of READ_TILES). */
  ACC_TILE: 17,
  READ_TILE: 18,
  BYTES: 256,
} as const;

/** Bytes of one job record: accumulate (k, v, n, P) or read (q, n, S'ᵀ, out), byte addresses. */
export const JOB_BYTES = 16;

const slot = (f: Fn, s: number) => f.i32_const(0).i32_load(4 * s);

/** Pushes the sum of the four lanes of the v128 local `x` as an f32 (x is clobbered). */
function hsum(f: Fn, x: number): void {
  f.local_get(x).local_get(x).local_get(x).f32x4_shuffle(2, 3, 0, 1).f32x4_add().local_set(x);
  f.local_get(x).local_get(x).local_get(x).f32x4_shuffle(1, 0, 3, 2).f32x4_add().f32x4_extract_lane(0);
}

/** acc += a·b on the v128 locals. */
function madd(f: Fn, relaxed: boolean, a: number, b: number, acc: number): void {
  if (relaxed) f.local_get(a).local_get(b).local_get(acc).f32x4_relaxed_madd().local_set(acc);
  else f.local_get(acc).local_get(a).local_get(b).f32x4_mul().f32x4_add().local_set(acc);
}

/**
 * slab_in(src, n, xt, f0): rows src [n, D] (n ≤ KB) -> Xᵀ [D, KB] at xt, and Fᵀ row 0 at f0: 1 for
 * the n rows, 0 (and Xᵀ 0) for the padding up to a multiple of 16. When D is a multiple of 4, whole
 * groups of 4 rows go by 4 × 4 transposes in registers.
 */
function slabIn(): Fn {
  const f = new Fn("slab_in", 4);
  const [src, n, xt, f0] = [0, 1, 2, 3];
  const j = f.local(I32), c = f.local(I32), d = f.local(I32), end = f.local(I32), p = f.local(I32);
  const sk = f.local(I32);
  const rows = Array.from({ length: 4 }, () => f.local(V128)), t = Array.from({ length: 4 }, () => f.local(V128));
  slot(f, LCTL.D).local_set(d);
  f.local_get(d).i32_const(4).i32_mul().local_set(sk);
  // whole groups of 4 rows when D % 4 = 0: end = n & ~3, else 0
  f.local_get(n).i32_const(~3).i32_and().i32_const(0).local_get(d).i32_const(3).i32_and().i32_eqz().select();
  f.local_set(end);
  f.for(j, () => f.i32_const(0), () => f.local_get(end), 4, () => {
    f.local_get(xt).local_get(j).i32_const(4).i32_mul().i32_add().local_set(p);
    f.for(c, () => f.i32_const(0), () => f.local_get(sk), 16, () => {
      rows.forEach((l, u) => {
        f.local_get(src).local_get(c).i32_add().local_get(sk).i32_const(u).i32_mul().i32_add().v128_load().local_set(l);
      });
      // t0 = (r0.0, r1.0, r0.1, r1.1), t1 = (r0.2, r1.2, r0.3, r1.3), t2, t3 likewise for r2, r3
      f.local_get(rows[0]!).local_get(rows[1]!).f32x4_shuffle(0, 4, 1, 5).local_set(t[0]!);
      f.local_get(rows[0]!).local_get(rows[1]!).f32x4_shuffle(2, 6, 3, 7).local_set(t[1]!);
      f.local_get(rows[2]!).local_get(rows[3]!).f32x4_shuffle(0, 4, 1, 5).local_set(t[2]!);
      f.local_get(rows[2]!).local_get(rows[3]!).f32x4_shuffle(2, 6, 3, 7).local_set(t[3]!);
      // column c + i of the 4 rows -> Xᵀ row c + i
      const col = (i: number, a: number, b: number, lanes: [number, number, number, number]) => {
        f.local_get(p).local_get(c).i32_const(KB).i32_mul().i32_add();
        f.local_get(t[a]!).local_get(t[b]!).f32x4_shuffle(...lanes).v128_store(i * KB * 4);
      };
      col(0, 0, 2, [0, 1, 4, 5]), col(1, 0, 2, [2, 3, 6, 7]), col(2, 1, 3, [0, 1, 4, 5]), col(3, 1, 3, [2, 3, 6, 7]);
    });
    f.local_get(src).local_get(sk).i32_const(4).i32_mul().i32_add().local_set(src);
    f.local_get(f0).local_get(j).i32_const(4).i32_mul().i32_add().f32x4_const(1).v128_store();
  });
  f.for(j, null, () => f.local_get(n), 1, () => {
    f.local_get(xt).local_get(j).i32_const(4).i32_mul().i32_add().local_set(p);
    f.for(c, () => f.i32_const(0), () => f.local_get(d), 1, () => {
      f.local_get(p).local_get(src).f32_load().f32_store();
      f.local_get(src).i32_const(4).i32_add().local_set(src);
      f.local_get(p).i32_const(KB * 4).i32_add().local_set(p);
    });
    f.local_get(f0).local_get(j).i32_const(4).i32_mul().i32_add().f32_const(1).f32_store();
  });
  f.local_get(n).i32_const(15).i32_add().i32_const(~15).i32_and().local_set(end);
  f.for(j, null, () => f.local_get(end), 1, () => {
    f.local_get(xt).local_get(j).i32_const(4).i32_mul().i32_add().local_set(p);
    f.for(c, () => f.i32_const(0), () => f.local_get(d), 1, () => {
      f.local_get(p).f32_const(0).f32_store();
      f.local_get(p).i32_const(KB * 4).i32_add().local_set(p);
    });
    f.local_get(f0).local_get(j).i32_const(4).i32_mul().i32_add().f32_const(0).f32_store();
  });
  return f;
}

/**
 * features(fT, xt, K16) / features_sum(fT, xt, K16, sums, n): Fᵀ rows 1..r−1 over columns
 * [0, K16) (K16 a multiple of 16) from the table, four vectors per step; features_sum also adds
 * each row's sum over the columns to the float64 sums[0..r) (row 0, all ones over the n rows: n).
 */
function features(withSums: boolean): Fn {
  const f = new Fn(withSums ? "features_sum" : "features", withSums ? 5 : 3);
  const [fT, xt, K16, sums, n] = [0, 1, 2, 3, 4];
  const i = f.local(I32), j = f.local(I32), r = f.local(I32), t = f.local(I32), end = f.local(I32);
  const pp = f.local(I32), px = f.local(I32), dst = f.local(I32), a = f.local(I32), b = f.local(I32);
  const c = f.local(I32);
  const acc = Array.from({ length: 4 }, () => f.local(V128)), x = f.local(V128);
  slot(f, LCTL.R).local_set(r);
  slot(f, LCTL.TABLE).local_set(t);
  f.local_get(K16).i32_const(4).i32_mul().local_set(end);
  if (withSums) {
    // sums[0] += n
    f.local_get(sums).local_get(sums), f.f64_load(), f.local_get(n), f.f64_convert_i32_s(), f.f64_add();
    f.f64_store();
  }
  f.local_get(fT).i32_const(KB * 4).i32_add().local_set(dst);
  f.for(i, () => f.i32_const(1), () => f.local_get(r), 1, () => {
    f.local_get(fT).local_get(t).i32_load().i32_add().local_set(pp);
    f.local_get(xt).local_get(t).i32_load(4).i32_add().local_set(px);
    f.local_get(t).i32_const(8).i32_add().local_set(t);
    if (withSums) { for (const a of acc) f.f32x4_const(0).local_set(a); }
    f.for(j, () => f.i32_const(0), () => f.local_get(end), 64, () => {
      f.local_get(dst).local_get(j).i32_add().local_set(a);
      f.local_get(pp).local_get(j).i32_add().local_set(b);
      f.local_get(px).local_get(j).i32_add().local_set(c);
      for (let u = 0; u < 4; u++) {
        f.local_get(a).local_get(b).v128_load(16 * u).local_get(c).v128_load(16 * u).f32x4_mul();
        if (withSums) f.local_tee(x).v128_store(16 * u).local_get(acc[u]!).local_get(x).f32x4_add().local_set(acc[u]!);
        else f.v128_store(16 * u);
      }
    });
    if (withSums) {
      // sums[i] += Σ lanes
      f.local_get(acc[0]!).local_get(acc[1]!).f32x4_add().local_get(acc[2]!).local_get(acc[3]!).f32x4_add();
      f.f32x4_add().local_set(x);
      f.local_get(sums).local_get(i).i32_const(8).i32_mul().i32_add().local_tee(pp);
      f.local_get(pp), f.f64_load(), hsum(f, x), f.f64_promote_f32(), f.f64_add(), f.f64_store();
    }
    f.local_get(dst).i32_const(KB * 4).i32_add().local_set(dst);
  });
  return f;
}

/**
 * acc_<rm>x<rv>(pa, pb, pc, K, sb): P[rm, 4·rv] (float64, row stride 2·sb) += A[rm, K] · B[K, 4·rv]
 * with A = Fᵀ rows (stride KB floats), B rows of stride sb bytes; K a multiple of 4.
 */
function accTile(rm: number, rv: number, relaxed: boolean): Fn {
  const f = new Fn(`acc_${rm}x${rv}`, 5);
  const [pa, pb, pc, K, sb] = [0, 1, 2, 3, 4];
  const ka = f.local(I32), end = f.local(I32), row = f.local(I32), a = f.local(I32);
  const acc = Array.from({ length: rm * rv }, () => f.local(V128));
  const vb = Array.from({ length: rv }, () => f.local(V128));
  const va = f.local(V128), t = f.local(V128);
  for (const l of acc) f.f32x4_const(0).local_set(l);
  f.local_get(K).i32_const(4).i32_mul().local_set(end);
  f.for(ka, () => f.i32_const(0), () => f.local_get(end), 16, () => {
    f.local_get(pa).local_get(ka).i32_add().local_set(a);
    for (let u = 0; u < 4; u++) {
      vb.forEach((l, c) => f.local_get(pb).v128_load(16 * c).local_set(l));
      for (let r = 0; r < rm; r++) {
        f.local_get(a).v128_load32_splat(r * KB * 4 + 4 * u).local_set(va);
        vb.forEach((b, c) => madd(f, relaxed, va, b, acc[r * rv + c]!));
      }
      f.local_get(pb).local_get(sb).i32_add().local_set(pb);
    }
  });
  // P[r, 4c..4c+4) += acc as two f64x2
  for (let r = 0; r < rm; r++) {
    f.local_get(pc).local_get(sb).i32_const(2 * r).i32_mul().i32_add().local_set(row);
    for (let c = 0; c < rv; c++) {
      const s = acc[r * rv + c]!;
      f.local_get(row).local_get(row).v128_load(32 * c).local_get(s), f.f64x2_promote_low_f32x4(), f.f64x2_add();
      f.v128_store(32 * c);
      f.local_get(s).local_get(s).f32x4_shuffle(2, 3, 0, 1).local_set(t);
      f.local_get(row).local_get(row).v128_load(32 * c + 16).local_get(t), f.f64x2_promote_low_f32x4(), f.f64x2_add();
      f.v128_store(32 * c + 16);
    }
  }
  return f;
}

/**
 * acc_v<rv>(pa, pb, pc, K): P [rp, Dvp] += Fᵀ [rp, K] · V [K, Dvp] in strips of rv vectors (then
 * single vectors), tiles of ACC_TILES[rv].rm rows.
 */
function accDriver(rv: number, at: (name: string) => number): Fn {
  const f = new Fn(`acc_v${rv}`, 4);
  const [pa, pb, pc, K] = [0, 1, 2, 3];
  const v = f.local(I32), m = f.local(I32), V = f.local(I32), sb = f.local(I32), rp = f.local(I32);
  const { rm } = ACC_TILES[rv]!;
  slot(f, LCTL.DVP).i32_const(4).i32_mul().local_set(sb);
  f.local_get(sb).i32_const(16).i32_div_u().local_set(V);
  slot(f, LCTL.RP).local_set(rp);
  const strip = (width: number) =>
    f.for(m, () => f.i32_const(0), () => f.local_get(rp), rm, () => {
      f.local_get(pa).local_get(m).i32_const(KB * 4).i32_mul().i32_add();
      f.local_get(pb).local_get(v).i32_const(16).i32_mul().i32_add();
      f.local_get(pc).local_get(m).local_get(sb).i32_mul().i32_const(2).i32_mul().i32_add();
      f.local_get(v).i32_const(32).i32_mul().i32_add();
      f.local_get(K).local_get(sb).call(at(`acc_${rm}x${width}`));
    });
  f.for(v, () => f.i32_const(0), () => f.local_get(V).i32_const(rv - 1).i32_sub(), rv, () => strip(rv));
  if (rv > 1) f.for(v, null, () => f.local_get(V), 1, () => strip(1));
  return f;
}

/**
 * read_<rm>x<rv>(pa, pb, pc, K, sa, first): C[rm, 4·rv] (=, or += unless first) A[rm, K] · B[K, 4·rv]
 * with A = S'ᵀ rows (stride sa bytes), B = Fᵀ rows and C rows (stride KB floats); any K.
 */
function readTile(rm: number, rv: number, relaxed: boolean): Fn {
  const f = new Fn(`read_${rm}x${rv}`, 6);
  const [pa, pb, pc, K, sa, first] = [0, 1, 2, 3, 4, 5];
  const ka = f.local(I32), end = f.local(I32);
  const ar = Array.from({ length: rm }, () => f.local(I32));
  const ak = Array.from({ length: rm }, () => f.local(I32));
  const acc = Array.from({ length: rm * rv }, () => f.local(V128));
  const vb = Array.from({ length: rv }, () => f.local(V128));
  const va = f.local(V128);
  const step = (offset: number) => {
    vb.forEach((l, c) => f.local_get(pb).v128_load(16 * c).local_set(l));
    ak.forEach((l, r) => {
      f.local_get(l).v128_load32_splat(offset).local_set(va);
      vb.forEach((b, c) => madd(f, relaxed, va, b, acc[r * rv + c]!));
    });
    f.local_get(pb).i32_const(KB * 4).i32_add().local_set(pb);
  };
  const columns = () => ak.forEach((l, r) => f.local_get(ar[r]!).local_get(ka).i32_add().local_set(l));
  ar.forEach((l, r) => f.local_get(pa).local_get(sa).i32_const(r).i32_mul().i32_add().local_set(l));
  for (const l of acc) f.f32x4_const(0).local_set(l);
  f.local_get(K).i32_const(~3).i32_and().i32_const(4).i32_mul().local_set(end);
  f.for(ka, () => f.i32_const(0), () => f.local_get(end), 16, () => {
    columns();
    for (let u = 0; u < 4; u++) step(4 * u);
  });
  f.for(ka, null, () => f.local_get(K).i32_const(4).i32_mul(), 4, () => (columns(), step(0)));
  f.local_get(first).i32_eqz().if(() => {
    for (let r = 0; r < rm; r++) {
      for (let c = 0; c < rv; c++) {
        const a = acc[r * rv + c]!, at = r * KB * 4 + 16 * c;
        f.local_get(pc).v128_load(at).local_get(a).f32x4_add().local_set(a);
      }
    }
  });
  for (let r = 0; r < rm; r++) {
    for (let c = 0; c < rv; c++) f.local_get(pc).local_get(acc[r * rv + c]!).v128_store(r * KB * 4 + 16 * c);
  }
  return f;
}

/**
 * read_<rm>(pa, pb, pc, V): C [wp, 4V] = S'ᵀ [wp, r] · Fᵀ [r, 4V] in blocks of READ_BLOCK monomials
 * (each a float32 sum of ≤ READ_BLOCK terms, the blocks then added), tiles READ_TILES[rm].
 */
function readDriver(rmKey: number, at: (name: string) => number): Fn {
  const f = new Fn(`read_${rmKey}`, 4);
  const [pa, pb, pc, V] = [0, 1, 2, 3];
  const v = f.local(I32), m = f.local(I32), wp = f.local(I32), r = f.local(I32), k0 = f.local(I32);
  const kn = f.local(I32);
  const { rm, rv } = READ_TILES[rmKey]!;
  slot(f, LCTL.WP).local_set(wp);
  slot(f, LCTL.R).local_set(r);
  const strip = (width: number) =>
    f.for(m, () => f.i32_const(0), () => f.local_get(wp), rm, () => {
      f.local_get(pa).local_get(m).local_get(r).i32_mul().local_get(k0).i32_add().i32_const(4).i32_mul().i32_add();
      f.local_get(pb).local_get(v).i32_const(16).i32_mul().i32_add().local_get(k0).i32_const(KB * 4).i32_mul();
      f.i32_add();
      f.local_get(pc).local_get(m).i32_const(KB * 4).i32_mul().i32_add().local_get(v).i32_const(16).i32_mul().i32_add();
      f.local_get(kn).local_get(r).i32_const(4).i32_mul().local_get(k0).i32_eqz().call(at(`read_${rm}x${width}`));
    });
  f.for(k0, () => f.i32_const(0), () => f.local_get(r), READ_BLOCK, () => {
    // kn = min(READ_BLOCK, r − k0)
    f.local_get(r).local_get(k0).i32_sub().local_tee(kn).i32_const(READ_BLOCK).local_get(kn);
    f.i32_const(READ_BLOCK).i32_lt_s().select().local_set(kn);
    f.for(v, () => f.i32_const(0), () => f.local_get(V).i32_const(rv - 1).i32_sub(), rv, () => strip(rv));
    f.for(v, null, () => f.local_get(V), 1, () => strip(1));
  });
  return f;
}

/** Emits `body(key)` for the key equal to the i32 local `value` (the last key otherwise). */
function dispatch(f: Fn, value: number, keys: readonly number[], body: (key: number) => void): void {
  const chain = (i: number): void => {
    if (i === keys.length - 1) return body(keys[i]!);
    f.local_get(value).i32_const(keys[i]!).i32_eq().if(() => body(keys[i]!), () => chain(i + 1));
  };
  chain(0);
}

/** acc_job(job, scratch): P = Σ over the job's keys, slab by slab. */
function accJob(at: (name: string) => number): Fn {
  const f = new Fn("acc_job", 2);
  const [jb, scratch] = [0, 1];
  const [k, v, n, p] = Array.from({ length: 4 }, () => f.local(I32));
  const s0 = f.local(I32), cnt = f.local(I32), cnt4 = f.local(I32), fT = f.local(I32), buf = f.local(I32);
  const sk = f.local(I32), sv = f.local(I32), rp = f.local(I32), pb = f.local(I32), j = f.local(I32);
  const variant = f.local(I32), sums = f.local(I32);
  [k, v, n, p].forEach((l, x) => f.local_get(jb).i32_load(4 * x).local_set(l));
  f.local_get(scratch), slot(f, LCTL.F), f.i32_add().local_set(fT);
  f.local_get(scratch), slot(f, LCTL.BUF), f.i32_add().local_set(buf);
  slot(f, LCTL.D).i32_const(4).i32_mul().local_set(sk);
  slot(f, LCTL.DVP).i32_const(4).i32_mul().local_set(sv);
  slot(f, LCTL.RP).local_set(rp);
  slot(f, LCTL.ACC_TILE).local_set(variant);
  // row sums follow P [rp, Dvp] (float64); P = 0, row sums = 0 (rp·(2·sv + 8) bytes, a multiple of 16)
  f.local_get(p).local_get(rp).local_get(sv).i32_mul().i32_const(2).i32_mul().i32_add().local_set(sums);
  f.for(
    j,
    () => f.i32_const(0),
    () => f.local_get(rp).local_get(sv).i32_const(2).i32_mul().i32_const(8).i32_add().i32_mul(),
    16,
    () => {
      f.local_get(p).local_get(j).i32_add().f32x4_const(0).v128_store();
    },
  );
  f.for(s0, () => f.i32_const(0), () => f.local_get(n), KB, () => {
    // cnt = min(KB, n − s0), cnt4 = cnt rounded up to 4
    f.local_get(n).local_get(s0).i32_sub().local_tee(cnt).i32_const(KB).local_get(cnt).i32_const(KB).i32_lt_s();
    f.select().local_tee(cnt).i32_const(3).i32_add().i32_const(~3).i32_and().local_set(cnt4);
    f.local_get(k).local_get(s0).local_get(sk).i32_mul().i32_add().local_get(cnt).local_get(scratch).local_get(fT);
    f.call(at("slab_in"));
    f.local_get(fT).local_get(scratch).local_get(cnt).i32_const(15).i32_add().i32_const(~15).i32_and();
    f.local_get(sums).local_get(cnt).call(at("features_sum"));
    // V rows of the slab: in place, or copied with zero rows up to cnt4 when cnt is not a multiple of 4
    f.local_get(v).local_get(s0).local_get(sv).i32_mul().i32_add().local_set(pb);
    f.local_get(cnt).local_get(cnt4).i32_ne().if(() => {
      f.for(j, () => f.i32_const(0), () => f.local_get(cnt).local_get(sv).i32_mul(), 16, () => {
        f.local_get(buf).local_get(j).i32_add().local_get(pb).local_get(j).i32_add().v128_load().v128_store();
      });
      f.for(j, null, () => f.local_get(cnt4).local_get(sv).i32_mul(), 16, () => {
        f.local_get(buf).local_get(j).i32_add().f32x4_const(0).v128_store();
      });
      f.local_get(buf).local_set(pb);
    });
    dispatch(f, variant, Object.keys(ACC_TILES).map(Number), (rv) => {
      f.local_get(fT).local_get(pb).local_get(p).local_get(cnt4).call(at(`acc_v${rv}`));
    });
  });
  return f;
}

/** read_job(job, scratch): the job's output rows, slab by slab. */
function readJob(at: (name: string) => number): Fn {
  const f = new Fn("read_job", 2);
  const [jb, scratch] = [0, 1];
  const [q, n, st, o] = Array.from({ length: 4 }, () => f.local(I32));
  const s0 = f.local(I32), cnt = f.local(I32), cnt4 = f.local(I32), fT = f.local(I32), buf = f.local(I32);
  const sk = f.local(I32), dv = f.local(I32), c = f.local(I32), j = f.local(I32), row = f.local(I32);
  const den = f.local(I32), dst = f.local(I32), tile = f.local(I32);
  [q, n, st, o].forEach((l, x) => f.local_get(jb).i32_load(4 * x).local_set(l));
  slot(f, LCTL.READ_TILE).local_set(tile);
  f.local_get(scratch), slot(f, LCTL.F), f.i32_add().local_set(fT);
  f.local_get(scratch), slot(f, LCTL.BUF), f.i32_add().local_set(buf);
  slot(f, LCTL.D).i32_const(4).i32_mul().local_set(sk);
  slot(f, LCTL.DV).local_set(dv);
  f.local_get(buf).local_get(dv).i32_const(KB * 4).i32_mul().i32_add().local_set(den);
  f.for(s0, () => f.i32_const(0), () => f.local_get(n), KB, () => {
    f.local_get(n).local_get(s0).i32_sub().local_tee(cnt).i32_const(KB).local_get(cnt).i32_const(KB).i32_lt_s();
    f.select().local_tee(cnt).i32_const(3).i32_add().i32_const(~3).i32_and().local_set(cnt4);
    f.local_get(q).local_get(s0).local_get(sk).i32_mul().i32_add().local_get(cnt).local_get(scratch).local_get(fT);
    f.call(at("slab_in"));
    f.local_get(fT).local_get(scratch).local_get(cnt).i32_const(15).i32_add().i32_const(~15).i32_and();
    f.call(at("features"));
    dispatch(f, tile, Object.keys(READ_TILES).map(Number), (rm) => {
      f.local_get(st).local_get(fT).local_get(buf).local_get(cnt4).i32_const(4).i32_div_u().call(at(`read_${rm}`));
    });
    // C[c] /= C[Dv], four queries at a time
    f.for(c, () => f.i32_const(0), () => f.local_get(dv), 1, () => {
      f.local_get(buf).local_get(c).i32_const(KB * 4).i32_mul().i32_add().local_set(row);
      f.for(j, () => f.i32_const(0), () => f.local_get(cnt4).i32_const(4).i32_mul(), 16, () => {
        f.local_get(row).local_get(j).i32_add().local_get(row).local_get(j).i32_add().v128_load();
        f.local_get(den).local_get(j).i32_add().v128_load().f32x4_div().v128_store();
      });
    });
    // out rows [s0, s0 + cnt) of Dv floats = C[:Dv]ᵀ
    f.local_get(o).local_get(s0).local_get(dv).i32_mul().i32_const(4).i32_mul().i32_add().local_set(dst);
    f.for(j, () => f.i32_const(0), () => f.local_get(cnt).i32_const(4).i32_mul(), 4, () => {
      f.local_get(buf).local_get(j).i32_add().local_set(row);
      f.for(c, () => f.i32_const(0), () => f.local_get(dv), 1, () => {
        f.local_get(dst).local_get(row).f32_load().f32_store();
        f.local_get(dst).i32_const(4).i32_add().local_set(dst);
        f.local_get(row).i32_const(KB * 4).i32_add().local_set(row);
      });
    });
  });
  return f;
}

/** run(thread): claims and runs job records until none are left (the pool entry, shared memory only). */
function runner(at: (name: string) => number): Fn {
  const f = new Fn("run", 1);
  const c = f.local(I32), idx = f.local(I32), total = f.local(I32), rec = f.local(I32), scr = f.local(I32);
  f.block(() =>
    f.loop(() => {
      f.i32_const(0).i32_atomic_load(4 * LCTL.CLAIM).local_set(c);
      f.local_get(c).i32_const(0xffff).i32_and().local_set(idx);
      slot(f, LCTL.TOTAL).local_set(total);
      f.local_get(idx).local_get(total).i32_ge_s().br_if(1);
      f.i32_const(0).local_get(c).local_get(c).i32_const(1).i32_add().i32_atomic_rmw_cmpxchg(4 * LCTL.CLAIM);
      f.local_get(c).i32_ne().br_if(0);
      slot(f, LCTL.JOBS).local_get(idx).i32_const(JOB_BYTES).i32_mul().i32_add().local_set(rec);
      slot(f, LCTL.SCRATCH).local_get(0), slot(f, LCTL.SCRATCH_BYTES), f.i32_mul().i32_add().local_set(scr);
      const call = (name: string) => f.local_get(rec).local_get(scr).call(at(name));
      slot(f, LCTL.KIND).if(() => call("read_job"), () => call("acc_job"));
      f.i32_const(0).i32_const(1).i32_atomic_rmw_add(4 * LCTL.DONE).i32_const(1).i32_add().local_get(total).i32_eq();
      f.if(() => f.i32_const(4 * LCTL.DONE).i32_const(1).memory_atomic_notify().drop());
      f.br(0);
    })
  );
  return f;
}

/** The module: exports acc_job and read_job (one record on the calling thread) and, when shared, run. */
export function lowrankModule(
  cfg: { relaxed: boolean; shared: boolean; initialPages: number; maximumPages: number },
): Uint8Array<ArrayBuffer> {
  const { relaxed } = cfg;
  const accShapes = [
    ...new Set(Object.values(ACC_TILES).flatMap(({ rm, rv }) => [`${rm}x${rv}`, `${rm}x1`])),
  ].map((s) => s.split("x").map(Number));
  const readShapes = [
    ...new Set(Object.values(READ_TILES).flatMap(({ rm, rv }) => [`${rm}x${rv}`, `${rm}x1`])),
  ].map((s) => s.split("x").map(Number));
  const names = [
    "slab_in",
    "features",
    "features_sum",
    ...accShapes.map(([rm, rv]) => `acc_${rm}x${rv}`),
    ...Object.keys(ACC_TILES).map((rv) => `acc_v${rv}`),
    ...readShapes.map(([rm, rv]) => `read_${rm}x${rv}`),
    ...Object.keys(READ_TILES).map((rm) => `read_${rm}`),
    "acc_job",
    "read_job",
    ...(cfg.shared ? ["run"] : []),
  ];
  const at = (name: string) => {
    const i = names.indexOf(name);
    if (i < 0) throw new Error(`lowrank module: no function ${name}`);
    return i;
  };
  const fns = [
    slabIn(),
    features(false),
    features(true),
    ...accShapes.map(([rm, rv]) => accTile(rm!, rv!, relaxed)),
    ...Object.keys(ACC_TILES).map((rv) => accDriver(Number(rv), at)),
    ...readShapes.map(([rm, rv]) => readTile(rm!, rv!, relaxed)),
    ...Object.keys(READ_TILES).map((rm) => readDriver(Number(rm), at)),
    accJob(at),
    readJob(at),
    ...(cfg.shared ? [runner(at)] : []),
  ];
  fns.forEach((fn, i) => {
    if (fn.name !== names[i]) throw new Error(`lowrank module: ${fn.name} at ${names[i]}`);
  });
  return encodeModule(fns, { initial: cfg.initialPages, maximum: cfg.maximumPages, shared: cfg.shared });
}
