/**
 * @file Elementwise activations in WebAssembly SIMD128, in place on f32x4 vectors: `silu`,
 * `gelu_tanh` and `exp`, each `(p, n)` over the n floats at byte address p (n rounded up to a
 * multiple of 4·UNROLL: the lanes past n are computed and ignored).
 *
 * exp is Cephes expf (the polynomial of attention_module.ts) over the whole float32 range: x is
 * clamped to [−104, 89] (e^−104 < 2⁻¹⁵⁰ rounds to 0, e^89 overflows, so the clamp changes no
 * result) and 2ⁿ, n ∈ [−150, 128], is applied as 2^⌊n/2⌋·2^(n−⌊n/2⌋), two normal powers, so
 * results near FLT_MAX and subnormal results round once, like float32(Math.exp(x)). A NaN x passes
 * the clamp (pmin/pmax keep their first operand) and the polynomial makes the result NaN.
 *
 * silu(x) = x / (1 + exp(−x)) and gelu_tanh(x) = x / (1 + exp(−z)) with z = 2·√(2/π)·(x +
 * 0.044715·x³), since ½(1 + tanh(z/2)) = 1 / (1 + e^−z): the JS formulas' arithmetic in float32.
 * exp(−z) may overflow to ∞, giving ∓0 where the exact value is below |x|·2⁻¹²⁷ in magnitude, and
 * ±∞ and NaN inputs give what the JS formulas give (−∞ / ∞ = NaN for x = −∞).
 *
 * Multiply-adds are never fused, so results are the same on every host.
 */
import { EXP_P } from "./attention_module.ts";
import { encodeModule, Fn, I32, V128 } from "./encode.ts";
import { rowFns } from "./rows_module.ts";

/** Names of the exported functions (all `(p, n)`), in module order. */
export const ELEMENTWISE_FNS = ["silu", "gelu_tanh", "exp"] as const;

/** A function of the module. */
export type ElementwiseFn = typeof ELEMENTWISE_FNS[number];

/** 1.5·2²³: adding it rounds to an integer, kept in the low mantissa bits. */
const ROUND = 12582912;
/** The clamp of exp's argument (see the file comment). */
const EXP_LO = -104, EXP_HI = 89;
/** 2·√(2/π) and 2·√(2/π)·0.044715: z = x·(G1 + G2·x²). */
const G1 = 2 * Math.sqrt(2 / Math.PI), G2 = G1 * 0.044715;

/** v128 locals holding the constants of `emitExp`, set once before the loop. */
export interface Consts {
  readonly lo: number;
  readonly hi: number;
  readonly log2e: number;
  readonly round: number;
  readonly c1: number;
  readonly c2: number;
  readonly p: readonly number[];
  readonly one: number;
  readonly roundBits: number;
  readonly bias: number;
}

export function consts(f: Fn): Consts {
  const set = (x: number) => {
    const l = f.local(V128);
    f.f32x4_const(x).local_set(l);
    return l;
  };
  const int = (x: number) => {
    const l = f.local(V128);
    f.i32x4_const(x).local_set(l);
    return l;
  };
  return {
    lo: set(EXP_LO),
    hi: set(EXP_HI),
    log2e: set(Math.LOG2E),
    round: set(ROUND),
    c1: set(0.693359375),
    c2: set(-2.12194440e-4),
    p: EXP_P.map(set),
    one: set(1),
    roundBits: int(0x4b400000),
    bias: int(127),
  };
}

/** One v128 local per vector of an unrolled iteration. */
export type Vec = readonly number[];

export function vec(f: Fn, u: number): Vec {
  return Array.from({ length: u }, () => f.local(V128));
}

/**
 * Leaves exp(x) of the f32x4 vectors in locals `x` in locals `out`: n = round(x·log₂e) by adding
 * 1.5·2²³, r = x − n·C1 − n·C2 (ln 2 split so that n·C1 is exact), e^r ≈ 1 + r + r²·P(r), then the
 * two power-of-two factors built from the exponent bits. Each step is emitted for every vector in
 * turn, so independent instructions sit side by side for the out-of-order core. `t`, `r`, `n` are
 * scratch; `x` may be `n`.
 */
function emitExp(f: Fn, k: Consts, x: Vec, out: Vec, t: Vec, r: Vec, n: Vec): void {
  const each = (g: (u: number) => void) => x.forEach((_, u) => g(u));
  // xc = pmin(pmax(x, LO), HI), in out: one instruction each, and a NaN x (first operand) passes
  each((u) => {
    f.local_get(x[u]!).local_get(k.lo).f32x4_pmax().local_get(k.hi);
    f.f32x4_pmin().local_set(out[u]!);
  });
  each((u) => f.local_get(out[u]!).local_get(k.log2e).f32x4_mul().local_get(k.round).f32x4_add().local_set(t[u]!));
  // r = xc − n·C1 − n·C2 with n = t − ROUND (exact)
  each((u) => {
    f.local_get(out[u]!).local_get(t[u]!).local_get(k.round).f32x4_sub().local_tee(r[u]!).local_get(k.c1);
    f.f32x4_mul().f32x4_sub().local_get(r[u]!).local_get(k.c2).f32x4_mul().f32x4_sub().local_set(r[u]!);
  });
  // P(r) by Horner in out, then P·r² + r + 1
  each((u) => f.local_get(k.p[0]!).local_get(r[u]!).f32x4_mul().local_get(k.p[1]!).f32x4_add().local_set(out[u]!));
  for (const c of k.p.slice(2)) {
    each((u) => f.local_get(out[u]!).local_get(r[u]!).f32x4_mul().local_get(c).f32x4_add().local_set(out[u]!));
  }
  each((u) => {
    f.local_get(out[u]!).local_get(r[u]!).local_get(r[u]!).f32x4_mul().f32x4_mul().local_get(r[u]!).f32x4_add();
    f.local_get(k.one).f32x4_add().local_set(out[u]!);
  });
  // n as i32 lanes (t's bits minus ROUND's), n1 = n >> 1 in t; out · 2^n1 · 2^(n − n1)
  each((u) => {
    f.local_get(t[u]!).local_get(k.roundBits), f.i32x4_sub().local_tee(n[u]!).i32_const(1);
    f.i32x4_shr_s().local_set(t[u]!);
  });
  each((u) => {
    f.local_get(out[u]!).local_get(t[u]!).local_get(k.bias).i32x4_add().i32_const(23).i32x4_shl().f32x4_mul();
    f.local_get(n[u]!).local_get(t[u]!), f.i32x4_sub().local_get(k.bias).i32x4_add().i32_const(23);
    f.i32x4_shl().f32x4_mul().local_set(out[u]!);
  });
}

/** Vectors per loop iteration (interleaved; the chunk sizes of the host are multiples of 4·UNROLL). */
export const UNROLL = 4;

/**
 * `name(p, n)`: y = body(x) for the f32x4 vectors from p, UNROLL per iteration, n rounded up to a
 * multiple of 4·UNROLL floats. `s` are four scratch vectors.
 */
function kernel(name: ElementwiseFn, body: (f: Fn, k: Consts, x: Vec, y: Vec, s: readonly Vec[]) => void): Fn {
  const f = new Fn(name, 2);
  const [p, n] = [0, 1];
  const i = f.local(I32), end = f.local(I32);
  const x = vec(f, UNROLL), y = vec(f, UNROLL), s = Array.from({ length: 4 }, () => vec(f, UNROLL));
  const k = consts(f);
  const step = 16 * UNROLL;
  // end = p + 4·n rounded up to a multiple of step
  f.local_get(p).local_get(n).i32_const(4).i32_mul().i32_const(step - 1).i32_add().i32_const(-step).i32_and();
  f.i32_add().local_set(end);
  f.for(i, () => f.local_get(p), () => f.local_get(end), step, () => {
    x.forEach((l, u) => f.local_get(i).v128_load(16 * u).local_set(l));
    body(f, k, x, y, s);
    y.forEach((l, u) => f.local_get(i).local_get(l).v128_store(16 * u));
  });
  return f;
}

/** y = x / (1 + exp(m)) for m = −z in locals `m` (reused as scratch); s[0..3) are scratch. */
export function emitOverOnePlusExp(f: Fn, k: Consts, x: Vec, m: Vec, y: Vec, s: readonly Vec[]): void {
  const [e, t, r] = s as [Vec, Vec, Vec];
  emitExp(f, k, m, e, t, r, m);
  x.forEach((l, u) => f.local_get(l).local_get(e[u]!).local_get(k.one).f32x4_add().f32x4_div().local_set(y[u]!));
}

/** y = silu(x) for the vectors in locals x (kept); s: four scratch vectors each. */
export function emitSilu(f: Fn, k: Consts, x: Vec, y: Vec, s: readonly Vec[]): void {
  // −x as 0 − x (one instruction; exp(±0) is 1 either way)
  const m = s[3]!;
  x.forEach((l, u) => f.f32x4_const(0).local_get(l).f32x4_sub().local_set(m[u]!));
  emitOverOnePlusExp(f, k, x, m, y, s);
}

/** y = gelu_tanh(x) for the vectors in locals x (kept); s: four scratch vectors each. */
export function emitGelu(f: Fn, k: Consts, x: Vec, y: Vec, s: readonly Vec[]): void {
  // −z = x·(−G2·x² − G1), the same roundings as z
  const m = s[3]!;
  x.forEach((l, u) => {
    f.local_get(l).local_get(l).f32x4_mul().f32x4_const(-G2).f32x4_mul().f32x4_const(-G1).f32x4_add();
    f.local_get(l).f32x4_mul().local_set(m[u]!);
  });
  emitOverOnePlusExp(f, k, x, m, y, s);
}

/** The module's functions, in the order of `ELEMENTWISE_FNS`. */
export function elementwiseFns(): Fn[] {
  return [
    kernel("silu", emitSilu),
    kernel("gelu_tanh", emitGelu),
    kernel("exp", (f, k, x, y, s) => emitExp(f, k, x, y, s[0]!, s[1]!, s[2]!)),
  ];
}

/** The module (activations, then rows_module.ts's row kernels), importing a non-shared memory of exactly `pages` 64 KiB pages. */
export function elementwiseModule(pages: number): Uint8Array<ArrayBuffer> {
  return encodeModule([...elementwiseFns(), ...rowFns()], { initial: pages, maximum: pages, shared: false });
}
