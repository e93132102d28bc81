/**
 * @file The fused WebAssembly attention (`attention.ts`, `attention_module.ts`) and the JS row form against
 * a float64 reference, and the SIMD exp it uses.
 *
 * Tolerance per query row (u = 2⁻²⁴, n keys, A = max_j Σ_d |q_d k_jd|, ‖v‖∞ over the call):
 * - logits: a float32 dot over D terms, times the scale, minus the row max, each off by at most
 *   δ = (D + 4)·u·|scale|·A (γ_D for the dot, one rounding each for the product and the shift);
 * - weights p_j = exp(logit_j − max) are off by a relative δ + ε_exp, with ε_exp ≤ 2u the exp
 *   error checked below; normalised weights move by at most 2(δ + ε_exp) in l1, so the output by
 *   that times ‖v‖∞;
 * - Σ_j p_j v_j and l = Σ_j p_j are float32 sums over n keys (sequential per lane, plus one
 *   rescale by α per key block of 128): each within (n + 2⌈n/128⌉ + 4)·u relative to Σ_j p_j |v_j|,
 *   the quotient within twice that times ‖v‖∞;
 * - plus u·|out| for rounding the float64 reference.
 * So |out − exact| ≤ [2(D + 4)·u·|scale|·A + 4u + 2(n + 2⌈n/128⌉ + 4)·u]·‖v‖∞ + u·|exact|, about
 * c·(D + n)·u·‖v‖∞ for moderate logits. The JS row form (float64 sums) meets it with room.
 */
import assert from "node:assert/strict";
import {
  attention,
  fullKeyRanges,
  type KeyRanges,
  scaleKeyRanges,
  setGemmBackend,
  setGemmThreads,
} from "../kernels.ts";
import type { AttentionOperands } from "../../kernels.ts";
import { attentionWasm, type QueryGroup } from "./attention.ts";
import { emitExp, expConsts } from "./attention_module.ts";
import { encodeModule, Fn, I32, V128 } from "./encode.ts";
import { randomF32 } from "../../random.ts";

const U = 2 ** -24;
const EXP_REL = 2 * U;

/** exp(x) of n floats at byte address pin into pout, with the kernels' SIMD exp. */
function expModule(relaxed: boolean): Uint8Array<ArrayBuffer> {
  const f = new Fn("exp", 3);
  const [pin, pout, n] = [0, 1, 2];
  const i = f.local(I32), x = f.local(V128), t = f.local(V128), r = f.local(V128);
  const k = expConsts(f);
  f.for(i, () => f.i32_const(0), () => f.local_get(n).i32_const(4).i32_mul(), 16, () => {
    f.local_get(pin).local_get(i).i32_add().v128_load().local_set(x);
    f.local_get(pout).local_get(i).i32_add();
    emitExp(f, k, relaxed, x, t, r);
    f.v128_store();
  });
  return encodeModule([f], { initial: 256, maximum: 256, shared: false });
}

Deno.test("SIMD exp: within 2u relative on [−87.3, 88], 0 below, NaN stays NaN", () => {
  for (const relaxed of [false, true]) {
    const bytes = expModule(relaxed);
    if (!WebAssembly.validate(bytes)) continue;
    const mem = new WebAssembly.Memory({ initial: 256, maximum: 256 });
    const { exp } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem } }).exports as {
      exp: (pin: number, pout: number, n: number) => void;
    };
    const N = 1 << 20, f32 = new Float32Array(mem.buffer);
    for (const [a, b] of [[-87.3, 0], [-1, 1], [0, 88]] as const) {
      for (let j = 0; j < N; j++) f32[j] = a + (b - a) * j / (N - 1);
      exp(0, 4 * N, N);
      for (let j = 0; j < N; j++) {
        const e = Math.exp(f32[j]!), rel = Math.abs(f32[N + j]! - e) / e;
        if (!(rel <= EXP_REL)) assert.fail(`exp(${f32[j]}) = ${f32[N + j]}: relative error ${rel / U} u`);
      }
    }
    f32.set([-Infinity, -100, -87.34, 0, NaN, -0, -1e-30, 0], 0);
    exp(0, 32, 8);
    assert.deepEqual(Array.from(f32.subarray(8, 15)), [0, 0, 0, 1, NaN, 1, 1]);
  }
});

/** float64 attention of one query row, and A = max_j Σ_d |q_d k_jd|. */
function reference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  qi: number,
  kb: number,
  vb: number,
  D: number,
  Dv: number,
  scale: number,
  lo: number,
  hi: number,
): { out: Float64Array; A: number } {
  let A = 0;
  const s = Array.from({ length: hi - lo }, (_, j) => {
    let x = 0, a = 0;
    for (let d = 0; d < D; d++) {
      const p = q[qi + d]! * k[kb + (lo + j) * D + d]!;
      x += p, a += Math.abs(p);
    }
    A = Math.max(A, a);
    return x * scale;
  });
  const max = Math.max(...s), p = s.map((x) => Math.exp(x - max)), sum = p.reduce((a, b) => a + b, 0);
  const out = new Float64Array(Dv);
  p.forEach((pj, j) => {
    for (let d = 0; d < Dv; d++) out[d]! += (pj / sum) * v[vb + (lo + j) * Dv + d]!;
  });
  return { out, A };
}

/** The kernels' shapes and scale (their operand record without the tensors), a name, and the inputs' spread. */
interface Case extends Omit<AttentionOperands<Float32Array>, "q" | "k" | "v"> {
  what: string;
  /** Standard deviation of q and k. */
  sigma: number;
  ranges: KeyRanges;
}

const SCHEDULE = [1, 2, 3, 4, 5, 6, 8, 10, 13, 16];
const L = SCHEDULE.reduce((a, n) => a + n * n, 0);
const CASES: Case[] = [
  {
    what: "VAR d 64",
    BH: 2,
    Tq: L,
    Tk: L,
    D: 64,
    Dv: 64,
    scale: 1 / 8,
    sigma: 1,
    ranges: scaleKeyRanges(SCHEDULE, Infinity),
  },
  {
    what: "VAR d 8",
    BH: 3,
    Tq: L,
    Tk: L,
    D: 8,
    Dv: 8,
    scale: 1,
    sigma: 0.5,
    ranges: scaleKeyRanges(SCHEDULE, Infinity),
  },
  {
    what: "peaked logits",
    BH: 1,
    Tq: L,
    Tk: L,
    D: 16,
    Dv: 16,
    scale: 2,
    sigma: 1,
    ranges: scaleKeyRanges(SCHEDULE, Infinity),
  },
  {
    what: "window 2, odd D, Dv",
    BH: 2,
    Tq: L,
    Tk: L,
    D: 5,
    Dv: 7,
    scale: 0.7,
    sigma: 1,
    ranges: scaleKeyRanges(SCHEDULE, 2),
  },
  {
    what: "no mask, Tq ≠ Tk",
    BH: 2,
    Tq: 37,
    Tk: 1501,
    D: 24,
    Dv: 20,
    scale: -0.3,
    sigma: 1,
    ranges: fullKeyRanges(37, 1501),
  },
];

function groupsOf(ranges: KeyRanges, Tq: number): QueryGroup[] {
  const groups: QueryGroup[] = [];
  for (let i0 = 0, i1 = 0; i0 < Tq; i0 = i1) {
    const lo = ranges.lo[i0]!, hi = ranges.hi[i0]!;
    for (i1 = i0 + 1; i1 < Tq && ranges.lo[i1] === lo && ranges.hi[i1] === hi; i1++);
    groups.push({ i0, i1, lo, hi });
  }
  return groups;
}

/** Checks `got` against float64 on every 5th query row of each head; returns max error / bound. */
function check(c: Case, what: string, q: Float32Array, k: Float32Array, v: Float32Array, got: Float32Array): number {
  const { BH, Tq, Tk, D, Dv, scale, ranges } = c;
  let vmax = 0, worst = 0;
  for (const x of v) vmax = Math.max(vmax, Math.abs(x));
  for (let bh = 0; bh < BH; bh++) {
    for (let i = 0; i < Tq; i += 5) {
      const lo = ranges.lo[i]!, hi = ranges.hi[i]!, n = hi - lo;
      const ref = reference(q, k, v, (bh * Tq + i) * D, bh * Tk * D, bh * Tk * Dv, D, Dv, scale, lo, hi);
      const rel = 2 * (D + 4) * U * Math.abs(scale) * ref.A + 2 * EXP_REL + 2 * (n + 2 * Math.ceil(n / 128) + 4) * U;
      for (let d = 0; d < Dv; d++) {
        const exact = ref.out[d]!, bound = rel * vmax + U * Math.abs(exact);
        const err = Math.abs(got[(bh * Tq + i) * Dv + d]! - exact);
        if (!(err <= bound)) {
          assert.fail(`${c.what} (${what}): head ${bh}, query ${i}, [${d}]: error ${err} > ${bound}`);
        }
        worst = Math.max(worst, err / bound);
      }
    }
  }
  return worst;
}

function inputs(c: Case, seed: number) {
  const { BH, Tq, Tk, D, Dv, sigma } = c;
  return {
    q: randomF32(BH * Tq * D, seed, sigma),
    k: randomF32(BH * Tk * D, seed + 1, sigma),
    v: randomF32(BH * Tk * Dv, seed + 2),
  };
}

Deno.test("fused WASM attention matches float64, with the same bits on one or two threads and per head", () => {
  let seed = 1;
  for (const c of CASES) {
    const { BH, Tq, Tk, D, Dv, scale, ranges } = c;
    const { q, k, v } = inputs(c, seed += 3);
    const direct = new Float32Array(BH * Tq * Dv).fill(NaN);
    assert.ok(attentionWasm(q, k, v, BH, Tq, Tk, D, Dv, scale, groupsOf(ranges, Tq), direct), `${c.what}: WASM taken`);
    const worst = check(c, "WASM", q, k, v, direct);
    assert.ok(worst > 0 && worst < 1, `${c.what}: ${worst}`);
    const headByHead = new Float32Array(BH * Tq * Dv);
    assert.ok(attentionWasm(q, k, v, BH, Tq, Tk, D, Dv, scale, groupsOf(ranges, Tq), headByHead, 1));
    assert.deepEqual(headByHead, direct, `${c.what}: one head per batch`);
    try {
      for (const threads of [1, 2]) {
        setGemmThreads(threads);
        assert.deepEqual(
          attention({ q, k, v, BH, Tq, Tk, D, Dv, scale, ranges }),
          direct,
          `${c.what}: ${threads} thread(s)`,
        );
      }
    } finally {
      setGemmThreads(undefined);
    }
  }
});

Deno.test("JS row form (forced backend) matches float64; the WASM path is off", () => {
  let seed = 100;
  try {
    setGemmBackend("js");
    for (const c of CASES) {
      const { BH, Tq, Tk, D, Dv, scale, ranges } = c;
      const { q, k, v } = inputs(c, seed += 3);
      assert.equal(attentionWasm(q, k, v, BH, Tq, Tk, D, Dv, scale, groupsOf(ranges, Tq), new Float32Array(1)), false);
      check(c, "JS", q, k, v, attention({ q, k, v, BH, Tq, Tk, D, Dv, scale, ranges }));
    }
  } finally {
    setGemmBackend("auto");
  }
});

Deno.test("fused WASM attention: empty key ranges and NaN inputs give NaN rows, as the row form does", () => {
  const BH = 2, Tq = 300, Tk = 300, D = 16, Dv = 8;
  const q = randomF32(BH * Tq * D, 7), k = randomF32(BH * Tk * D, 8), v = randomF32(BH * Tk * Dv, 9);
  k[(Tk + 200) * D + 3] = NaN; // head 1, key 200
  const lo = new Int32Array(Tq).fill(0), hi = new Int32Array(Tq).fill(Tk);
  hi.fill(0, 0, 10); // queries 0–9 see no keys
  hi.fill(150, 10, 100); // queries 10–99 do not see key 200
  const ranges = { lo, hi };
  const wasm = attention({ q, k, v, BH, Tq, Tk, D, Dv, scale: 0.25, ranges });
  let js: Float32Array;
  try {
    setGemmBackend("js");
    js = attention({ q, k, v, BH, Tq, Tk, D, Dv, scale: 0.25, ranges });
  } finally {
    setGemmBackend("auto");
  }
  for (let bh = 0; bh < BH; bh++) {
    for (let i = 0; i < Tq; i++) {
      const nan = i < 10 || (bh === 1 && i >= 100);
      for (let d = 0; d < Dv; d++) {
        const o = (bh * Tq + i) * Dv + d;
        assert.equal(Number.isNaN(wasm[o]!), nan, `WASM head ${bh}, query ${i}`);
        assert.equal(Number.isNaN(js[o]!), nan, `JS head ${bh}, query ${i}`);
      }
    }
  }
});
