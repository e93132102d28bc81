/**
 * @file `deno task bench:attention`: low-rank vs exact block-causal attention on paper-regime tensors
 * (head dim 8, 16 heads, β = 0.5, ε = 1e-3, Chebyshev) over the 256/512/1024-px schedules, in one run:
 * time of each path, ratio, measured max error against exact, and the bound 2ε/(1−ε)·‖V‖∞.
 */
import { smallestDegree } from "../compiler/lowrank/poly.ts";
import { attention, scaleKeyRanges } from "../runtime/js/kernels.ts";
import { featureTable, lowrankAttention } from "../runtime/js/lowrank.ts";
import { randomF32 } from "../runtime/random.ts";

const SCHEDULES: Record<string, number[]> = {
  "256px": [1, 2, 3, 4, 5, 6, 8, 10, 13, 16],
  "512px": [1, 2, 3, 4, 6, 9, 13, 18, 24, 32],
  "1024px": [1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64],
};
const H = 16, D = 8, BETA = 0.5, EPS = 1e-3;
const poly = smallestDegree("chebyshev", BETA, EPS)!;
const table = featureTable(D, poly.coeffs, 1);

/** Rows of norm `norm` (q scaled so that |q·k| ≤ β with unit keys). */
function rows(n: number, seed: number, norm: number): Float32Array {
  const x = randomF32(n * D, seed);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < D; c++) s += x[i * D + c]! ** 2;
    for (let c = 0; c < D; c++) x[i * D + c]! *= norm / Math.sqrt(s);
  }
  return x;
}

function time(f: () => Float32Array): { ms: number; out: Float32Array } {
  const t = performance.now();
  const out = f();
  return { ms: performance.now() - t, out };
}

console.log(`paper regime: ${H} heads, d ${D}, β ${BETA}, ε ${EPS}: chebyshev degree ${poly.degree}, rank ${table.r}`);
console.log("| schedule | L | exact ms | low-rank ms | speed-up | max error | bound 2ε/(1−ε)·‖V‖∞ |");
console.log("|---|---|---|---|---|---|---|");
for (const [name, schedule] of Object.entries(SCHEDULES)) {
  const L = schedule.reduce((a, n) => a + n * n, 0);
  const q = rows(H * L, 1, BETA), k = rows(H * L, 2, 1), v = randomF32(H * L * D, 3);
  const ranges = scaleKeyRanges(schedule, Infinity);
  const sizes = schedule.map((n) => n * n);
  lowrankAttention({
    q,
    k,
    v,
    BH: 1,
    Tq: L,
    Tk: L,
    D,
    Dv: D,
    scale: 1,
    sizes,
    window: Infinity,
    table,
    beta: BETA,
    exactRanges: ranges,
  }); // warm up
  const low = time(() =>
    lowrankAttention({
      q,
      k,
      v,
      BH: H,
      Tq: L,
      Tk: L,
      D,
      Dv: D,
      scale: 1,
      sizes,
      window: Infinity,
      table,
      beta: BETA,
      exactRanges: ranges,
    })
  );
  const exact = time(() => attention({ q, k, v, BH: H, Tq: L, Tk: L, D, Dv: D, scale: 1, ranges }));
  let err = 0, vmax = 0;
  for (let i = 0; i < exact.out.length; i++) err = Math.max(err, Math.abs(exact.out[i]! - low.out[i]!));
  for (const x of v) vmax = Math.max(vmax, Math.abs(x));
  const bound = (2 * poly.boundRelError) / (1 - poly.boundRelError) * vmax;
  console.log(
    `| ${name} | ${L} | ${exact.ms.toFixed(0)} | ${low.ms.toFixed(0)} | ${(exact.ms / low.ms).toFixed(1)}× | ${
      err.toExponential(2)
    } | ${bound.toExponential(2)} |`,
  );
}
