/**
 * @file Row kernels of the JS target in WebAssembly SIMD128, with the bits of the JS loops they
 * replace (runtime/js/kernels.ts): each float64 sum is taken in the order of `sum8` in ../loops.ts
 * (eight partial sums, four f64x2 chains), every float64 product and quotient is the JS one, and
 * each store rounds to float32 where the JS store does.
 * The host copies operands into the module's memory a chunk at a time (`ROWS`), so each call
 * works within L2.
 *
 *   ln_rows(x, o, s, b, C, rows)     LayerNorm of `rows` rows of C floats (no affine), then, when s ≠ 0,
 *                                    h + h·s + b with one row of s and b for all rows (`layerNorm`)
 *   heads_l2(x, o, tau, rows, H, D)  x [rows, H·D] -> o [H, rows, D], each row of D over max(‖·‖₂, eps),
 *                                    then times tau[h] when tau ≠ 0 (`heads` with eps)
 *   add_mul(a, b, c, o, n)           o = a + b·c, the product rounded first (`addMul`)
 *
 * Addresses are bytes; eps is the float64 at ROWS.EPS. C and D must be multiples of 8; n is rounded
 * up to a multiple of 4 (the buffers have room for it).
 */
import { F64, Fn, I32, V128 } from "./encode.ts";

/** Floats per operand buffer: one chunk of rows. */
export const ROWS_CHUNK = 16384;

/** Byte addresses of the module's buffers (each ROWS_CHUNK floats, plus 64 bytes of slack). */
export const ROWS = (() => {
  const buffer = 4 * ROWS_CHUNK + 64;
  const EPS = 0, TAU = 64, S = 4096, B = S + buffer, X = B + buffer, Y = X + buffer, Z = Y + buffer, O = Z + buffer;
  return { EPS, TAU, S, B, X, Y, Z, O, END: O + buffer, MAX_TAU: (S - TAU) / 4 } as const;
})();

/** Names of the row functions, in module order. */
export const ROW_FNS = ["ln_rows", "heads_l2", "add_mul"] as const;

/**
 * Leaves in f64x2 local `acc` the float64 sums of g(x) over [p, end) (32 bytes per step) as eight
 * partial sums s_k over the elements of index k mod 8, in four f64x2 chains (independent adds):
 * acc = [(s0 + s4) + (s2 + s6), (s1 + s5) + (s3 + s7)], the order of `sum8` in ../loops.ts.
 */
function sum8(f: Fn, p: number, end: number, acc: number, g: () => void): void {
  const i = f.local(I32), v = f.local(V128), a = Array.from({ length: 4 }, () => f.local(V128));
  for (const l of a) f.f32x4_const(0).local_set(l);
  f.for(i, () => f.local_get(p), () => f.local_get(end), 32, () => {
    for (let h = 0; h < 2; h++) {
      f.local_get(i).v128_load(16 * h).local_set(v);
      f.local_get(a[2 * h]!).local_get(v).f64x2_promote_low_f32x4(), g(), f.f64x2_add().local_set(a[2 * h]!);
      f.local_get(a[2 * h + 1]!).local_get(v).local_get(v).f32x4_shuffle(2, 3, 0, 1).f64x2_promote_low_f32x4(), g();
      f.f64x2_add().local_set(a[2 * h + 1]!);
    }
  });
  // a0 = [s0, s1], a1 = [s2, s3], a2 = [s4, s5], a3 = [s6, s7]
  f.local_get(a[0]!).local_get(a[2]!).f64x2_add().local_get(a[1]!).local_get(a[3]!).f64x2_add().f64x2_add();
  f.local_set(acc);
}

/** Pushes lane 0 + lane 1 of the f64x2 local `acc`. */
const lanes = (f: Fn, acc: number) =>
  f.local_get(acc).f64x2_extract_lane(0).local_get(acc).f64x2_extract_lane(1).f64_add();

/**
 * Pushes the f32x4 of g(v) rounded to float32 per lane, where g maps the f64x2 on the stack (two
 * lanes of the v128 local v, promoted) to an f64x2.
 */
function perLane(f: Fn, v: number, g: () => void): void {
  f.local_get(v).f64x2_promote_low_f32x4(), g(), f.f32x4_demote_f64x2_zero();
  f.local_get(v).local_get(v).f32x4_shuffle(2, 3, 0, 1).f64x2_promote_low_f32x4(), g(), f.f32x4_demote_f64x2_zero();
  f.f32x4_shuffle(0, 1, 4, 5);
}

/** ln_rows(x, o, s, b, C, rows). */
function lnRows(): Fn {
  const f = new Fn("ln_rows", 6);
  const [x, o, s, b, C, rows] = [0, 1, 2, 3, 4, 5];
  const r = f.local(I32), p = f.local(I32), end = f.local(I32), q = f.local(I32), j = f.local(I32);
  const acc = f.local(V128), m = f.local(V128), inv = f.local(V128), d = f.local(V128), v = f.local(V128);
  const h = f.local(V128), mean = f.local(F64), n = f.local(F64);
  f.local_get(C).f64_convert_i32_s().local_set(n);
  f.for(r, () => f.i32_const(0), () => f.local_get(rows), 1, () => {
    // p = x + 4·r·C, end = p + 4·C, q = o + 4·r·C
    f.local_get(x).local_get(r).local_get(C).i32_mul().i32_const(4).i32_mul().i32_add().local_tee(p);
    f.local_get(C).i32_const(4).i32_mul().i32_add().local_set(end);
    f.local_get(o).local_get(p).i32_add().local_get(x).i32_sub().local_set(q);
    // mean = Σ x / C; var = Σ (x − mean)² / C + eps; inv = 1 / √var
    sum8(f, p, end, acc, () => {});
    lanes(f, acc).local_get(n).f64_div().local_tee(mean).f64x2_splat().local_set(m);
    sum8(f, p, end, acc, () => f.local_get(m).f64x2_sub().local_tee(d).local_get(d).f64x2_mul());
    f.i32_const(1).f64_convert_i32_s();
    lanes(f, acc).local_get(n).f64_div().i32_const(0).f64_load(ROWS.EPS).f64_add().f64_sqrt();
    f.f64_div().f64x2_splat().local_set(inv);
    // h = float32((x − mean)·inv); with s: (h + h·s) + b in float32
    f.for(j, () => f.i32_const(0), () => f.local_get(C).i32_const(4).i32_mul(), 16, () => {
      f.local_get(p).local_get(j).i32_add().v128_load().local_set(v);
      f.local_get(q).local_get(j).i32_add();
      perLane(f, v, () => f.local_get(m).f64x2_sub().local_get(inv).f64x2_mul());
      f.local_set(h);
      f.local_get(s).if(
        () => {
          f.local_get(h).local_get(h).local_get(s).local_get(j).i32_add().v128_load().f32x4_mul().f32x4_add();
          f.local_get(b).local_get(j).i32_add().v128_load().f32x4_add().local_set(h);
        },
      );
      f.local_get(h).v128_store();
    });
  });
  return f;
}

/** heads_l2(x, o, tau, rows, H, D). */
function headsL2(): Fn {
  const f = new Fn("heads_l2", 6);
  const [x, o, tau, rows, H, D] = [0, 1, 2, 3, 4, 5];
  const r = f.local(I32), hd = f.local(I32), p = f.local(I32), end = f.local(I32), q = f.local(I32);
  const j = f.local(I32), acc = f.local(V128), inv = f.local(V128), g = f.local(V128), v = f.local(V128);
  const d = f.local(V128);
  f.for(r, () => f.i32_const(0), () => f.local_get(rows), 1, () => {
    f.for(hd, () => f.i32_const(0), () => f.local_get(H), 1, () => {
      // p = x + 4·(r·H + hd)·D, q = o + 4·(hd·rows + r)·D
      f.local_get(x).local_get(r).local_get(H).i32_mul().local_get(hd).i32_add().local_get(D).i32_mul();
      f.i32_const(4).i32_mul().i32_add().local_tee(p).local_get(D).i32_const(4).i32_mul().i32_add().local_set(end);
      f.local_get(o).local_get(hd).local_get(rows).i32_mul().local_get(r).i32_add().local_get(D).i32_mul();
      f.i32_const(4).i32_mul().i32_add().local_set(q);
      // inv = 1 / max(√Σ x², eps)
      sum8(f, p, end, acc, () => f.local_tee(d).local_get(d).f64x2_mul());
      f.i32_const(1).f64_convert_i32_s(),
        lanes(f, acc).f64_sqrt().i32_const(0).f64_load(ROWS.EPS).f64_max().f64_div().f64x2_splat().local_set(inv);
      f.local_get(tau).if(() =>
        f.local_get(tau).local_get(hd).i32_const(4).i32_mul().i32_add().v128_load32_splat().local_set(g)
      );
      f.for(j, () => f.i32_const(0), () => f.local_get(D).i32_const(4).i32_mul(), 16, () => {
        f.local_get(p).local_get(j).i32_add().v128_load().local_set(v);
        f.local_get(q).local_get(j).i32_add();
        perLane(f, v, () => f.local_get(inv).f64x2_mul());
        f.local_set(v);
        f.local_get(tau).if(() => f.local_get(v).local_get(g).f32x4_mul().local_set(v));
        f.local_get(v).v128_store();
      });
    });
  });
  return f;
}

/** add_mul(a, b, c, o, n). */
function addMul(): Fn {
  const f = new Fn("add_mul", 5);
  const [a, b, c, o, n] = [0, 1, 2, 3, 4];
  const j = f.local(I32);
  f.for(j, () => f.i32_const(0), () => f.local_get(n).i32_const(4).i32_mul(), 16, () => {
    f.local_get(o).local_get(j).i32_add();
    f.local_get(a).local_get(j).i32_add().v128_load();
    f.local_get(b).local_get(j).i32_add().v128_load().local_get(c).local_get(j).i32_add().v128_load().f32x4_mul();
    f.f32x4_add().v128_store();
  });
  return f;
}

/** The row functions, in the order of `ROW_FNS`. */
export function rowFns(): Fn[] {
  return [lnRows(), headsL2(), addMul()];
}
