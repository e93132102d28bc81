/**
 * @file Host-side constants that the generated code of every target builds once (hoisted to module
 * scope) or that kernels of every target derive their weights from: key ranges of attention masks and
 * resampling matrices.
 */
import type { KeyRanges } from "./kernels.ts";

/** Key ranges of a scale mask: block-causal (window = ∞) or a window of scales. */
export function scaleKeyRanges(schedule: readonly number[], window: number): KeyRanges {
  const ends: number[] = [];
  schedule.reduce((a, n) => (ends.push(a + n * n), a + n * n), 0);
  const L = ends.at(-1)!;
  const lo = new Int32Array(L), hi = new Int32Array(L);
  let t = 0;
  schedule.forEach((n, s) => {
    const first = Math.max(0, s - window + 1);
    const from = first === 0 ? 0 : ends[first - 1]!;
    for (let j = 0; j < n * n; j++, t++) lo[t] = from, hi[t] = ends[s]!;
  });
  return { lo, hi };
}

/** Key ranges with no mask: every query sees all Tk keys. */
export function fullKeyRanges(Tq: number, Tk: number): KeyRanges {
  return { lo: new Int32Array(Tq), hi: new Int32Array(Tq).fill(Tk) };
}

/** PyTorch cubic convolution kernel, a = -0.75. */
function cubic(x: number): number {
  const a = -0.75, t = Math.abs(x);
  if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
  return 0;
}

/** Row-stochastic [nOut, nIn] matrix of 1-D bicubic (half-pixel, clamped taps) or area resampling. */
export function resampleMatrix(mode: "bicubic" | "area", nIn: number, nOut: number): Float64Array {
  const m = new Float64Array(nOut * nIn);
  for (let o = 0; o < nOut; o++) {
    if (mode === "area") {
      const lo = Math.floor((o * nIn) / nOut), hi = Math.ceil(((o + 1) * nIn) / nOut);
      for (let i = lo; i < hi; i++) m[o * nIn + i] = 1 / (hi - lo);
      continue;
    }
    const src = (o + 0.5) * (nIn / nOut) - 0.5;
    const i0 = Math.floor(src), t = src - i0;
    const taps = [cubic(t + 1), cubic(t), cubic(1 - t), cubic(2 - t)];
    taps.forEach((wt, j) => {
      const i = Math.min(nIn - 1, Math.max(0, i0 - 1 + j));
      m[o * nIn + i]! += wt;
    });
  }
  return m;
}
