/**
 * @file GroupNorm in WebAssembly SIMD128, one channel per call so that channels spread over the
 * threads (jobs of kind 6 and 7 of gemm_module.ts's runner), with SiLU optionally fused into the
 * normalisation's single write.
 *
 * `gn_stats(x, S, stats, ch)`: channel ch of x (S floats at x + 4·ch·S) → its mean and the sum of
 * squared deviations from that mean, both accumulated in float64 (two passes: the channel is in L2
 * for the second), stored as two f64 at stats + 16·ch. The host combines channels into groups
 * (Chan et al.'s parallel variance) and writes each channel's float64 scale and shift.
 *
 * `gn_apply(x, S, affine, ch, silu)`: y = x·scale + shift in float64 (scale, shift: two f64 at
 * affine + 16·ch), rounded once to float32 (the JS loop's arithmetic: the same bits for the same
 * scale and shift; in float32 the two roundings lose the digits that x·scale and shift cancel in a
 * channel far from its group's mean), then silu(y) when `silu` is 1 (elementwise_module.ts's
 * SiLU), in place.
 *
 * S must be a multiple of 16 (four vectors per unrolled iteration).
 */
import { consts, emitSilu, UNROLL, vec } from "./elementwise_module.ts";
import { F64, Fn, I32, V128 } from "./encode.ts";

/** Floats per channel must be a multiple of this. */
export const NORM_S_MULTIPLE = 4 * UNROLL;

/** gn_stats(x, S, stats, ch). */
export function gnStats(): Fn {
  const f = new Fn("gn_stats", 4);
  const [x, S, stats, ch] = [0, 1, 2, 3];
  const p = f.local(I32), end = f.local(I32), v = f.local(V128), a0 = f.local(V128), a1 = f.local(V128);
  const m = f.local(V128), mean = f.local(F64);
  // p = x + 4·ch·S, end = p + 4·S
  f.local_get(x).local_get(ch).local_get(S).i32_mul().i32_const(4).i32_mul().i32_add().local_tee(p);
  f.local_get(S).i32_const(4).i32_mul().i32_add().local_set(end);
  /** a0 += g(low two lanes of v), a1 += g(high two lanes), over the channel. */
  const pass = (g: () => void) => {
    f.f32x4_const(0).local_tee(a0).local_set(a1);
    const i = f.local(I32);
    f.for(i, () => f.local_get(p), () => f.local_get(end), 16, () => {
      f.local_get(i).v128_load().local_set(v);
      f.local_get(a0).local_get(v).f64x2_promote_low_f32x4(), g(), f.f64x2_add().local_set(a0);
      f.local_get(a1).local_get(v).local_get(v).f32x4_shuffle(2, 3, 0, 1).f64x2_promote_low_f32x4();
      g(), f.f64x2_add().local_set(a1);
    });
  };
  const lanes = () => {
    f.local_get(a0).f64x2_extract_lane(0).local_get(a0).f64x2_extract_lane(1).f64_add();
    f.local_get(a1).f64x2_extract_lane(0).local_get(a1).f64x2_extract_lane(1).f64_add().f64_add();
  };
  pass(() => {});
  lanes(), f.local_get(S).f64_convert_i32_s().f64_div().local_tee(mean).f64x2_splat().local_set(m);
  // Σ (x − mean)², with (x − mean) and its square exact up to float64 rounding
  const d = f.local(V128);
  pass(() => f.local_get(m).f64x2_sub().local_tee(d).local_get(d).f64x2_mul());
  const at = () => f.local_get(stats).local_get(ch).i32_const(16).i32_mul().i32_add();
  at(), f.local_get(mean).f64_store(0);
  at(), lanes(), f.f64_store(8);
  return f;
}

/** gn_apply(x, S, affine, ch, silu). */
export function gnApply(): Fn {
  const f = new Fn("gn_apply", 5);
  const [x, S, affine, ch, silu] = [0, 1, 2, 3, 4];
  const p = f.local(I32), end = f.local(I32), i = f.local(I32), scale = f.local(V128), shift = f.local(V128);
  const xs = vec(f, UNROLL), ys = vec(f, UNROLL), s = Array.from({ length: 4 }, () => vec(f, UNROLL));
  const k = consts(f);
  f.local_get(x).local_get(ch).local_get(S).i32_mul().i32_const(4).i32_mul().i32_add().local_tee(p);
  f.local_get(S).i32_const(4).i32_mul().i32_add().local_set(end);
  f.local_get(affine).local_get(ch).i32_const(16).i32_mul().i32_add().f64_load(0).f64x2_splat().local_set(scale);
  f.local_get(affine).local_get(ch).i32_const(16).i32_mul().i32_add().f64_load(8).f64x2_splat().local_set(shift);
  /** The low two lanes of the vector on the stack, x·scale + shift in float64, rounded: [y0, y1, 0, 0]. */
  const affine2 = () => f.f64x2_promote_low_f32x4().local_get(scale).f64x2_mul().local_get(shift).f64x2_add();
  const loop = (act: boolean) =>
    f.for(i, () => f.local_get(p), () => f.local_get(end), 16 * UNROLL, () => {
      const out = act ? ys : xs;
      xs.forEach((l, u) => {
        f.local_get(i).v128_load(16 * u).local_tee(l), affine2(), f.f32x4_demote_f64x2_zero();
        f.local_get(l).local_get(l).f32x4_shuffle(2, 3, 0, 1), affine2(), f.f32x4_demote_f64x2_zero();
        f.f32x4_shuffle(0, 1, 4, 5).local_set(l);
      });
      if (act) emitSilu(f, k, xs, ys, s);
      out.forEach((l, u) => f.local_get(i).local_get(l).v128_store(16 * u));
    });
  f.local_get(silu).if(() => loop(true), () => loop(false));
  return f;
}
