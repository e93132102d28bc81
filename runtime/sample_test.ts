/**
 * Tests for the seeded generator, per-image seeds, classifier-free guidance and top-k / top-p sampling (the official
 * `sample_with_top_k_top_p_` rule), and for the checks on generation settings.
 *
 * Statistical checks use fixed seeds, so they are deterministic; their bounds are 5 standard errors
 * of the quantity checked, so a correct sampler fails them with probability below 1e-6 for any seed.
 */

import assert from "node:assert/strict";
import {
  Generator,
  guide,
  imageSeed,
  NonFiniteLogitsError,
  type SampleOptions,
  sampleRows,
  sortRow,
  topOrder,
} from "./sample.ts";
import { checkGenerateOptions, GenerateError, type GenerateOptions } from "./generate.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

/** `n` draws from one row, as `n` identical rows sampled in a single call. */
function draw(row: readonly number[], options: SampleOptions, n: number, seed: number): Int32Array {
  const V = row.length;
  const g = new Float32Array(n * V);
  for (let r = 0; r < n; r++) g.set(row, r * V);
  return sampleRows(g, V, options, new Generator(seed));
}

/** How often each token of a vocabulary of `V` was drawn. */
function histogram(tokens: Int32Array, V: number): number[] {
  const counts = new Array<number>(V).fill(0);
  for (const t of tokens) {
    assert.ok(Number.isInteger(t) && t >= 0 && t < V, `token ${t} outside [0, ${V})`);
    counts[t]!++;
  }
  return counts;
}

/** Softmax (in float64) of the float32 values of `row` over the indices `kept`; 0 elsewhere. */
function restrictedSoftmax(row: readonly number[], kept: readonly number[]): number[] {
  const f = row.map(Math.fround);
  const max = Math.max(...kept.map((i) => f[i]!));
  const p = new Array<number>(row.length).fill(0);
  let total = 0;
  for (const i of kept) total += p[i] = Math.exp(f[i]! - max);
  for (const i of kept) p[i]! /= total;
  return p;
}

/**
 * Tokens with probability 0 in `expected` never appear; the others appear with frequencies within
 * 5 standard errors √(p(1−p)/N) of `expected`.
 */
function assertFrequencies(tokens: Int32Array, expected: readonly number[]): void {
  const N = tokens.length;
  const counts = histogram(tokens, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const p = expected[i]!;
    if (p === 0) {
      assert.equal(counts[i], 0, `token ${i} is masked but was drawn ${counts[i]} times`);
      continue;
    }
    const freq = counts[i]! / N;
    const se = Math.sqrt(p * (1 - p) / N);
    assert.ok(
      Math.abs(freq - p) <= 5 * se,
      `token ${i}: frequency ${freq} vs probability ${p} (5 SE = ${5 * se})`,
    );
  }
}

/** Logits whose softmax is exactly `probs` (up to float32 rounding of the logits). */
const logitsOf = (probs: readonly number[]): number[] => probs.map(Math.log);

/** A reproducible row of `V` logits with a spread like a real model's. */
function randomRow(V: number, gen: Generator): number[] {
  return Array.from({ length: V }, () => 8 * gen.uniform() - 4);
}

const N = 20_000;

// ---------------------------------------------------------------------------------------------
// Generator

Deno.test("Generator: the same seed gives the same stream", () => {
  for (const seed of [0, 1, 42, -7, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER]) {
    const a = new Generator(seed), b = new Generator(seed);
    for (let i = 0; i < 1000; i++) assert.equal(a.uniform(), b.uniform(), `seed ${seed}, draw ${i}`);
  }
});

Deno.test("Generator: different seeds give different streams", () => {
  const seeds = [0, 1, 2, 3, 42, 1234, -1, -2, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER];
  const heads = seeds.map((s) => {
    const g = new Generator(s);
    return Array.from({ length: 8 }, () => g.uniform()).join(",");
  });
  assert.equal(new Set(heads).size, seeds.length, "two seeds produced the same first 8 draws");
});

Deno.test("Generator: uniform() lies in [0, 1) with mean 1/2 and variance 1/12", () => {
  const n = 100_000;
  const g = new Generator(2024);
  let sum = 0, sumSq = 0;
  const xs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x = g.uniform();
    assert.ok(x >= 0 && x < 1, `draw ${i} = ${x} outside [0, 1)`);
    xs[i] = x, sum += x;
  }
  const mean = sum / n;
  for (const x of xs) sumSq += (x - mean) ** 2;
  const variance = sumSq / (n - 1);
  // SE of the mean: σ/√n with σ² = 1/12. SE of the sample variance: √((μ4 − σ⁴)/n) with
  // μ4 = 1/80 for U(0, 1), so μ4 − σ⁴ = 1/80 − 1/144 = 1/180.
  const seMean = Math.sqrt(1 / 12 / n), seVar = Math.sqrt(1 / 180 / n);
  assert.ok(Math.abs(mean - 0.5) <= 5 * seMean, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1 / 12) <= 5 * seVar, `variance ${variance}`);
});

// ---------------------------------------------------------------------------------------------
// top-k

Deno.test("sampleRows: top-k = 1 returns each row's argmax, whatever the seed", () => {
  const V = 37, rows = 200;
  const src = new Generator(9);
  const g = new Float32Array(rows * V);
  for (let i = 0; i < g.length; i++) g[i] = 10 * src.uniform() - 5;
  const argmax = Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let i = 1; i < V; i++) if (g[r * V + i]! > g[r * V + best]!) best = i;
    return best;
  });
  for (const seed of [0, 1, 77, -3]) {
    const tokens = sampleRows(g, V, { topK: 1, topP: 0 }, new Generator(seed));
    assert.equal(tokens.length, rows);
    assert.deepEqual(Array.from(tokens), argmax, `seed ${seed}`);
    // top-p on top of top-k = 1 changes nothing: the largest always stays.
    assert.deepEqual(Array.from(sampleRows(g, V, { topK: 1, topP: 0.9 }, new Generator(seed))), argmax);
  }
});

Deno.test("sampleRows: top-k = 1 with a tied maximum draws only (and each of) the tied indices", () => {
  // Both 2s equal the 1st largest, so neither is strictly below it and both are kept.
  const tokens = draw([0, 2, 1, 2, -1], { topK: 1, topP: 0 }, 2000, 5);
  assertFrequencies(tokens, [0, 0.5, 0, 0.5, 0]);
});

Deno.test("sampleRows: top-k = 3 draws only the 3 largest, with softmax frequencies among them", () => {
  const row = [0.3, -1.2, 1.7, 0.9, -0.4, 1.1, 0.0, 0.6];
  const top3 = [2, 5, 3]; // 1.7, 1.1, 0.9
  const tokens = draw(row, { topK: 3, topP: 0 }, N, 11);
  assertFrequencies(tokens, restrictedSoftmax(row, top3));
});

Deno.test("sampleRows: top-k on random rows matches the restricted softmax", () => {
  const src = new Generator(31);
  for (const k of [2, 5]) {
    const row = randomRow(16, src);
    const f = row.map(Math.fround);
    const kth = [...f].sort((a, b) => b - a)[k - 1]!;
    const kept = f.flatMap((x, i) => (x >= kth ? [i] : []));
    assert.equal(kept.length, k); // random values: no ties
    assertFrequencies(draw(row, { topK: k, topP: 0 }, N, 100 + k), restrictedSoftmax(row, kept));
  }
});

Deno.test("sampleRows: logits tied with the k-th largest are all kept", () => {
  // The 2nd largest is 1: indices 1, 2, 3 (all equal to it) and 4 survive; only 0 is strictly below.
  const row = [0, 1, 1, 1, 2];
  const tokens = draw(row, { topK: 2, topP: 0 }, N, 3);
  const counts = histogram(tokens, row.length);
  assert.equal(counts[0], 0, "index 0 is below the 2nd largest");
  for (const i of [1, 2, 3, 4]) assert.ok(counts[i]! > 0, `tied index ${i} never drawn`);
  assertFrequencies(tokens, restrictedSoftmax(row, [1, 2, 3, 4]));
});

Deno.test("sampleRows: top-k = 0 and top-k = V keep every token", () => {
  const row = [0.5, -0.5, 1.5, 0.0, 1.0];
  const all = restrictedSoftmax(row, [0, 1, 2, 3, 4]);
  assertFrequencies(draw(row, { topK: 0, topP: 0 }, N, 12), all);
  assertFrequencies(draw(row, { topK: row.length, topP: 0 }, N, 13), all);
});

// ---------------------------------------------------------------------------------------------
// top-p

/** softmax = [0.5, 0.3, 0.15, 0.05]; ascending that is 0.05, 0.15, 0.3, 0.5 with cumsum 0.05, 0.2, 0.5, 1. */
const FOUR = logitsOf([0.5, 0.3, 0.15, 0.05]);

Deno.test("sampleRows: top-p = 0.75 drops the tokens whose ascending cumsum is ≤ 0.25", () => {
  // 1 − p = 0.25: cumsums 0.05 and 0.2 are ≤ 0.25 (tokens 3, 2 dropped); 0.5 is not (token 1 kept).
  assertFrequencies(draw(FOUR, { topK: 0, topP: 0.75 }, N, 21), restrictedSoftmax(FOUR, [0, 1]));
});

Deno.test("sampleRows: top-p = 0.85 drops only the smallest token", () => {
  // 1 − p = 0.15: only the cumsum 0.05 is ≤ 0.15.
  assertFrequencies(draw(FOUR, { topK: 0, topP: 0.85 }, N, 22), restrictedSoftmax(FOUR, [0, 1, 2]));
});

Deno.test("sampleRows: top-p = 0.6 keeps the two largest", () => {
  // 1 − p = 0.4: cumsums 0.05, 0.2 ≤ 0.4; 0.5 > 0.4.
  assertFrequencies(draw(FOUR, { topK: 0, topP: 0.6 }, N, 23), restrictedSoftmax(FOUR, [0, 1]));
  // 1 − p = 0.55: cumsum 0.5 ≤ 0.55 too, so only the largest stays.
  assertFrequencies(draw(FOUR, { topK: 0, topP: 0.45 }, 2000, 24), [1, 0, 0, 0]);
});

Deno.test("sampleRows: a cumsum exactly equal to 1 − p is dropped (≤, not <)", () => {
  // Four equal logits: each probability is exactly 1/4 and the ascending cumsums 1/4, 1/2, 3/4, 1 are
  // exact in binary, as is 1 − 0.75 = 1/4. So exactly one token (cumsum 1/4 ≤ 1/4) is dropped and the
  // other three stay. Which tied token goes depends on the sort order of ties, so only the count of
  // distinct tokens and their equal frequencies are asserted.
  const tokens = draw([0, 0, 0, 0], { topK: 0, topP: 0.75 }, N, 25);
  const counts = histogram(tokens, 4);
  const present = counts.filter((c) => c > 0);
  assert.equal(present.length, 3, `counts ${counts}`);
  const se = Math.sqrt((1 / 3) * (2 / 3) / N);
  for (const c of present) assert.ok(Math.abs(c / N - 1 / 3) <= 5 * se, `counts ${counts}`);
  // Same with 1 − 0.5 = 1/2: the cumsums 1/4 and 1/2 are dropped, two tokens remain.
  const two = histogram(draw([0, 0, 0, 0], { topK: 0, topP: 0.5 }, 4000, 26), 4).filter((c) => c > 0);
  assert.equal(two.length, 2);
});

Deno.test("sampleRows: top-p = 1 keeps every token", () => {
  // 1 − p = 0 and every cumsum is > 0.
  assertFrequencies(draw(FOUR, { topK: 0, topP: 1 }, N, 27), restrictedSoftmax(FOUR, [0, 1, 2, 3]));
});

Deno.test("sampleRows: a very small top-p keeps only the largest", () => {
  for (const p of [1e-6, 1e-3, 0.1]) {
    const tokens = draw(FOUR, { topK: 0, topP: p }, 1000, 28);
    assert.ok(tokens.every((t) => t === 0), `p = ${p}`);
  }
  const src = new Generator(8);
  for (let r = 0; r < 20; r++) {
    const row = randomRow(50, src);
    const f = row.map(Math.fround);
    const argmax = f.indexOf(Math.max(...f));
    const tokens = draw(row, { topK: 0, topP: 1e-4 }, 50, r);
    assert.ok(tokens.every((t) => t === argmax), `row ${r}`);
  }
});

// ---------------------------------------------------------------------------------------------
// top-k then top-p

Deno.test("sampleRows: top-p applies to the softmax of the top-k survivors", () => {
  // softmax = [0.4, 0.25, 0.2, 0.1, 0.05]. top-k = 3 keeps 0.4, 0.25, 0.2, renormalised to
  // 8/17, 5/17, 4/17; ascending cumsums 4/17 ≈ 0.235, 9/17 ≈ 0.529, 1. top-p = 0.75 (1 − p = 0.25)
  // then drops token 2 only, leaving tokens 0 and 1. (Top-p on the unmasked softmax would have
  // kept token 2 too: its ascending cumsum there is 0.05 + 0.1 + 0.2 = 0.35 > 0.25.)
  const row = logitsOf([0.4, 0.25, 0.2, 0.1, 0.05]);
  assertFrequencies(draw(row, { topK: 3, topP: 0.75 }, N, 41), restrictedSoftmax(row, [0, 1]));
  assertFrequencies(draw(row, { topK: 0, topP: 0.75 }, N, 42), restrictedSoftmax(row, [0, 1, 2]));
  // top-k = 4 (0.4, 0.25, 0.2, 0.1 → /0.95) with top-p = 0.9 (1 − p = 0.1): cumsum 0.1/0.95 ≈ 0.105
  // is > 0.1, so all four stay.
  assertFrequencies(draw(row, { topK: 4, topP: 0.9 }, N, 43), restrictedSoftmax(row, [0, 1, 2, 3]));
});

Deno.test("sampleRows: the same seed gives the same tokens; rows are sampled independently", () => {
  const src = new Generator(55);
  const V = 20, rows = 64;
  const g = Float32Array.from({ length: rows * V }, () => 6 * src.uniform() - 3);
  const o = { topK: 8, topP: 0.9 };
  const a = sampleRows(g, V, o, new Generator(1)), b = sampleRows(g, V, o, new Generator(1));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, sampleRows(g, V, o, new Generator(2)));
  assert.equal(sampleRows(new Float32Array(0), V, o, new Generator(1)).length, 0);
});

// ---------------------------------------------------------------------------------------------
// guide

Deno.test("guide: t = 0 returns the conditional rows exactly", () => {
  const B = 2, rowSize = 24;
  const src = new Generator(60);
  const logits = Float32Array.from({ length: 2 * B * rowSize }, () => 20 * src.uniform() - 10);
  const out = guide(logits, B, rowSize, 0);
  assert.equal(out.length, B * rowSize);
  assert.deepEqual(out, logits.slice(0, B * rowSize));
});

Deno.test("guide: (1+t)·cond − t·uncond in float32 for t = 1.5 and other scales", () => {
  const B = 3, rowSize = 40;
  const src = new Generator(61);
  const logits = Float32Array.from({ length: 2 * B * rowSize }, () => 20 * src.uniform() - 10);
  for (const t of [1.5, 0.25, 4, 1 / 3]) {
    const out = guide(logits, B, rowSize, t);
    assert.equal(out.length, B * rowSize);
    for (let i = 0; i < out.length; i++) {
      const c = logits[i]!, u = logits[B * rowSize + i]!;
      const exact = Math.fround((1 + t) * c - t * u);
      // Rounding 1 + t, t, both products and the difference to float32 each err by at most 2^-24
      // relative to |(1+t)·c| or |t·u| (the terms, not the possibly cancelling result), and the
      // reference's own rounding by 2^-24·|value|: 2^-22·(|(1+t)·c| + |t·u|) covers all of it.
      const tol = 2 ** -22 * (Math.abs((1 + t) * c) + Math.abs(t * u)) + 1e-30;
      assert.ok(Math.abs(out[i]! - exact) <= tol, `t = ${t}, i = ${i}: ${out[i]} vs ${exact}`);
      assert.equal(out[i], Math.fround(out[i]!));
    }
  }
});

Deno.test("guide: t = 1.5 on values without cancellation is within 2^-22 relative", () => {
  // Conditional rows positive and unconditional rows negative: the two terms add, so the
  // relative bound applies to the value itself.
  const B = 2, rowSize = 16;
  const src = new Generator(62);
  const logits = new Float32Array(2 * B * rowSize);
  for (let i = 0; i < B * rowSize; i++) {
    logits[i] = 1 + 9 * src.uniform();
    logits[B * rowSize + i] = -1 - 9 * src.uniform();
  }
  const out = guide(logits, B, rowSize, 1.5);
  for (let i = 0; i < out.length; i++) {
    const exact = Math.fround(2.5 * logits[i]! - 1.5 * logits[B * rowSize + i]!);
    assert.ok(Math.abs(out[i]! - exact) <= 2 ** -22 * Math.abs(exact) + 1e-30, `i = ${i}`);
  }
  // Row layout: batch b of the output only depends on rows b and B + b.
  const single = guide(Float32Array.from([3, -2]), 1, 1, 1.5);
  assert.equal(single[0], 2.5 * 3 - 1.5 * -2);
});

// ---------------------------------------------------------------------------------------------
// checkGenerateOptions

const META = { schedule: [1, 2, 3], classes: 10, vocab: 64, tokens: 14 };
const VALID: GenerateOptions = { labels: [0, 3, 9], cfg: 4, topK: 32, topP: 0.96, seed: 0 };

function assertRejects(change: Partial<GenerateOptions>, flag: string): void {
  assert.throws(
    () => checkGenerateOptions({ ...VALID, ...change }, META),
    (err: unknown) => {
      assert.ok(err instanceof GenerateError, `not a GenerateError: ${err}`);
      assert.equal(err.name, "GenerateError");
      assert.ok(err.message.includes(flag), `"${flag}" missing in: ${err.message}`);
      return true;
    },
    `${JSON.stringify(change)} accepted`,
  );
}

Deno.test("checkGenerateOptions: accepts valid settings", () => {
  const ok: Partial<GenerateOptions>[] = [
    {},
    { labels: [0] },
    { labels: [9, 9, 9] },
    { cfg: 0 },
    { cfg: 1.5 },
    { topK: 0 },
    { topK: 1 },
    { topK: META.vocab },
    { topP: 0 },
    { topP: 1 },
    { topP: 0.5 },
    { seed: -5 },
    { seed: Number.MAX_SAFE_INTEGER },
  ];
  for (const change of ok) checkGenerateOptions({ ...VALID, ...change }, META);
});

Deno.test("checkGenerateOptions: rejects bad labels", () => {
  assertRejects({ labels: [] }, "--labels");
  assertRejects({ labels: [10] }, "--labels");
  assertRejects({ labels: [0, 100] }, "--labels");
  assertRejects({ labels: [-1] }, "--labels");
  assertRejects({ labels: [1.5] }, "--labels");
  assertRejects({ labels: [NaN] }, "--labels");
});

Deno.test("checkGenerateOptions: rejects a bad cfg", () => {
  assertRejects({ cfg: -0.5 }, "--cfg");
  assertRejects({ cfg: NaN }, "--cfg");
  assertRejects({ cfg: Infinity }, "--cfg");
});

Deno.test("checkGenerateOptions: rejects a bad top-k", () => {
  assertRejects({ topK: -1 }, "--top-k");
  assertRejects({ topK: META.vocab + 1 }, "--top-k");
  assertRejects({ topK: 2.5 }, "--top-k");
  assertRejects({ topK: NaN }, "--top-k");
});

Deno.test("checkGenerateOptions: rejects a bad top-p", () => {
  assertRejects({ topP: -0.1 }, "--top-p");
  assertRejects({ topP: 1.01 }, "--top-p");
  assertRejects({ topP: NaN }, "--top-p");
});

Deno.test("checkGenerateOptions: rejects a non-integer seed", () => {
  assertRejects({ seed: 1.5 }, "--seed");
  assertRejects({ seed: NaN }, "--seed");
});

Deno.test("sortRow: packed (value, index) keys give the comparator's order (ties, ±0, subnormals, extremes)", () => {
  const gen = new Generator(11);
  for (const V of [1, 2, 7, 300, 4096]) {
    const row = new Float32Array(V);
    for (let i = 0; i < V; i++) {
      const r = gen.uniform();
      // a few distinct values so that ties are common, plus special magnitudes
      row[i] = r < 0.2
        ? 0
        : r < 0.3
        ? -0
        : r < 0.4
        ? 1e-40
        : r < 0.45
        ? -1e-40
        : r < 0.5
        ? 3e38
        : r < 0.55
        ? -3e38
        : Math.round((r - 0.75) * 16) / 4;
    }
    const packed = new Int32Array(V), compared = new Int32Array(V);
    sortRow(row, packed, new Float64Array(V));
    sortRow(row, compared, null);
    assert.deepEqual(packed, compared, `V = ${V}`);
  }
});

Deno.test("topOrder: selection and a partial sort give the full comparator sort's candidates (ties at the k-th kept)", () => {
  const gen = new Generator(12);
  for (const V of [2, 7, 300, 4096]) {
    for (const levels of [3, 40, 0]) {
      // few levels: ties at the k-th value are the rule; 0: continuous values
      const row = Float32Array.from({ length: V }, () => {
        const r = gen.uniform();
        return levels ? Math.floor(r * levels) - levels / 2 : (r - 0.5) * 20;
      });
      for (const topK of [1, 2, Math.ceil(V / 3), V - 1, V, 0]) {
        const fast = new Int32Array(V), full = new Int32Array(V);
        const first = topOrder(row, topK, fast, new Float64Array(V));
        sortRow(row, full, null);
        const kth = topK > 0 && topK < V ? row[full[V - topK]!]! : -Infinity;
        const want = full.findIndex((i) => row[i]! >= kth);
        assert.equal(first, want, `V ${V}, levels ${levels}, topK ${topK}: first`);
        assert.deepEqual(fast.subarray(first), full.subarray(want), `V ${V}, levels ${levels}, topK ${topK}: order`);
      }
    }
  }
});

Deno.test("sampleRows: non-finite guided logits are refused with the token and class", () => {
  const g = new Float32Array(8).fill(0.5);
  g[6] = NaN;
  assert.throws(
    () => sampleRows(g, 4, { topK: 0, topP: 0 }, new Generator(0)),
    (e: Error) => e instanceof NonFiniteLogitsError && /NaN at token 1, class 2/.test(e.message),
  );
  g[6] = Infinity;
  assert.throws(() => sampleRows(g, 4, { topK: 1, topP: 0 }, new Generator(0)), NonFiniteLogitsError);
});

Deno.test("imageSeed is SplitMix64 of (run seed, index + 1 steps), cut to 53 bits", () => {
  // The first outputs of the reference SplitMix64 seeded with 0 (Steele, Lea and Flood; Vigna's C code).
  const reference = [0xe220a8397b1dcdafn, 0x6e789e6aa1b965f4n, 0x06c45d188009454fn];
  for (const [i, z] of reference.entries()) assert.equal(imageSeed(0, i), Number(z >> 11n));
  assert.ok(Number.isSafeInteger(imageSeed(2 ** 53 - 1, 10 ** 9)));
  assert.notEqual(imageSeed(1, 0), imageSeed(0, 0));
});
