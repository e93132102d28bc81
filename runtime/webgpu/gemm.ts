/**
 * @file The WebGPU GEMM: out [M, N] = a [M, K] · w [N, K]ᵀ (+ bias [N]), float32, tiled through
 * workgroup memory for real GPUs.
 *
 * A workgroup of 8×8 invocations (the project's 64: two 32-wide warps or one 64-wide wavefront) owns a
 * BM × 64 output tile, BM = 8·TM, each invocation a TM × 8 register tile. K advances BK = 16 at a time:
 * the workgroup copies the A tile [BM, 16] and the W tile [64, 16] into workgroup memory (vec4 global
 * loads when K % 4 = 0, scalar otherwise; rows, columns and K past the edge read as zero), stores them
 * k-major so the inner loop reads each invocation's rows and columns as whole vectors, then every
 * invocation does TM·8 multiply-adds per k from 2 + ⌈TM/4⌉ vector reads. At BM = 64 that is 8 KiB of the
 * 16 KiB workgroup-memory minimum and 64 accumulators per invocation.
 *
 * Small M (generation steps have 1–2 rows per scale and image) takes a shorter tile, TM = 1, 2 or 4
 * rows per invocation, so a 2-row product does not compute 64 rows.
 */
import type { Gpu, GpuArgs as Args, GpuTensor } from "./device.ts";
import { kernelSource, range, source, WG } from "./wgsl.ts";

/** Invocation grid of a workgroup (TX columns × TY rows of invocations), K per tile, columns per invocation. */
const TX = 8, TY = 8, BK = 16, TN = 8;
/** Output columns per workgroup. */
const BN = TX * TN;
if (TX * TY !== WG) throw new Error("gemm: the invocation grid must fill one workgroup");

/**
 * Tiled GEMM with TM rows per invocation (1, 2, 4 or 8); vec: X and Wt bound as vec4 (K % 4 = 0).
 * Invocation (tx, ty) owns rows (ty + 8g)·T + c (T = min(TM, 4), g < TM/T, c < T) and columns
 * (tx + 8q)·4 + c (q < 2, c < 4) of the tile: its reads of As and Ws are vectors, and the 8 invocations
 * of a row of the grid read or write 8 consecutive vec4 (no bank conflicts).
 */
function tiledSource(vec: boolean, tm: number): string {
  return source(`gemm:${vec ? 4 : 1}:${tm}`, () => {
    const V = vec ? 4 : 1, T = Math.min(tm, 4), BM = TY * tm;
    const vt = (n: number) => (n === 1 ? "f32" : `vec${n}<f32>`);
    const groups = range(tm / T), quads = range(TN / 4);
    /** Copies a [rows, BK] slice of `src` (row stride Kv in V-units) k-major into `dst` of `width`-wide vectors. */
    const load = (dst: string, src: string, rows: number, width: number, r0: string, R: string) => {
      const n = rows * BK / V, per = Math.ceil(n / WG);
      const put = (j: string, k: string) =>
        width === 1
          ? `${dst}[${k} * ${rows}u + m] = ${j};`
          : `${dst}[(${k} * ${rows}u + m) / ${width}u][m % ${width}u] = ${j};`;
      return range(per).flatMap((t) => [
        `  {`,
        `    let i = lid + ${t * WG}u;`,
        ...(n % WG === 0 ? [] : [`    if (i < ${n}u) {`]),
        `    let m = i % ${rows}u; let kq = i / ${rows}u;`,
        `    let r = ${r0} + m; let kk = k0 + kq;`,
        `    var v = ${vt(V)}(0.0);`,
        `    if (r < ${R} && kk < Kv) { v = ${src}[r * Kv + kk]; }`,
        ...(vec ? range(4).map((j) => `    ${put(`v[${j}]`, `(kq * 4u + ${j}u)`)}`) : [`    ${put("v", "kq")}`]),
        ...(n % WG === 0 ? [] : [`    }`]),
        `  }`,
      ]);
    };
    const acc = (g: number, c: number, q: number) => `c${g * T + c}_${q}`;
    const comp = (a: string, c: number) => (T === 1 ? a : `${a}[${c}]`);
    const helpers = [
      `var<workgroup> As: array<${vt(T)}, ${BK * BM / T}>;`,
      `var<workgroup> Ws: array<vec4<f32>, ${BK * BN / 4}>;`,
      ``,
    ].join("\n");
    const body = [
      `  let M = pu(0u); let Kv = pu(1u); let N = pu(2u); let tilesN = pu(4u);`,
      `  let tr = wg / tilesN;`,
      `  if (tr >= pu(5u)) { return; }`,
      `  let m0 = tr * ${BM}u; let n0 = (wg - tr * tilesN) * ${BN}u;`,
      `  let tx = lid % ${TX}u; let ty = lid / ${TX}u;`,
      ...groups.flatMap((g) => range(T).flatMap((c) => quads.map((q) => `  var ${acc(g, c, q)} = vec4<f32>(0.0);`))),
      `  for (var k0 = 0u; k0 < Kv; k0 += ${BK / V}u) {`,
      ...load("As", "X", BM, T, "m0", "M"),
      ...load("Ws", "Wt", BN, 4, "n0", "N"),
      `    workgroupBarrier();`,
      `    for (var k = 0u; k < ${BK}u; k++) {`,
      ...groups.map((g) => `      let a${g} = As[k * ${BM / T}u + ${g * TY}u + ty];`),
      ...quads.map((q) => `      let b${q} = Ws[k * ${BN / 4}u + ${q * TX}u + tx];`),
      ...groups.flatMap((g) =>
        range(T).flatMap((c) => quads.map((q) => `      ${acc(g, c, q)} += ${comp(`a${g}`, c)} * b${q};`))
      ),
      `    }`,
      `    workgroupBarrier();`,
      `  }`,
      ...quads.flatMap((q) => [
        `  let nc${q} = n0 + ${q * TX * 4}u + tx * 4u;`,
        `  var bias${q} = vec4<f32>(0.0);`,
        `  if (pu(3u) != 0u) {`,
        `    bias${q} = vec4<f32>(${range(4).map((c) => `Bs[min(nc${q} + ${c}u, N - 1u)]`).join(", ")});`,
        `  }`,
      ]),
      ...groups.flatMap((g) =>
        range(T).flatMap((c) => [
          `  { let m = m0 + (${g * TY}u + ty) * ${T}u + ${c}u;`,
          `    if (m < M) {`,
          ...quads.flatMap((q) => [
            `      let v${q} = ${acc(g, c, q)} + bias${q};`,
            ...range(4).map((j) => `      if (nc${q} + ${j}u < N) { O[m * N + nc${q} + ${j}u] = v${q}[${j}]; }`),
          ]),
          `    }`,
          `  }`,
        ])
      ),
    ];
    const X = vec ? "vec4<f32>" : "f32";
    return kernelSource(
      [["X", "read", X], ["Wt", "read", X], ["Bs", "read", "f32"], ["O", "read_write", "f32"]],
      body.join("\n"),
      helpers,
    );
  });
}

/** Rows × columns of a register tile. */
const RM = 16, RN = 8;

/**
 * Register-only GEMM for CPU adapters: each invocation a tm × tn tile (tn a multiple of 4), rows from the
 * workgroup index (uniform loads), no workgroup memory; vec: K read as vec4. On llvmpipe, time goes to
 * storage loads, so larger tiles pay (16×8 measured ~1.5× faster than 8×4); inputs with fewer than 16
 * rows use 8-row tiles.
 */
function registerSource(vec: boolean, tm: number, tn: number): string {
  return source(`gemm-register:${vec ? 4 : 1}:${tm}:${tn}`, () => {
    const T = vec ? "vec4<f32>" : "f32";
    const mul = (w: string) => (vec ? `dot(x, ${w})` : `x * ${w}`);
    const rows = range(tm), cols = range(tn), quads = range(tn / 4);
    /** Accumulator a{r}_{q} holds columns 4q..4q+3 of row r. */
    const update = (r: number) =>
      `    { let x = X[x${r} + k]; ${
        quads.map((q) => `a${r}_${q} += vec4<f32>(${range(4).map((c) => mul(`b${4 * q + c}`)).join(", ")});`)
          .join(" ")
      } }`;
    const bias = (q: number) =>
      `    bias${q} = vec4<f32>(${range(4).map((c) => `Bs[min(n0 + ${4 * q + c}u, N - 1u)]`).join(", ")});`;
    const store = (r: number) => [
      `  if (m0 + ${r}u < M) {`,
      `    let o = (m0 + ${r}u) * N + n0;`,
      ...quads.flatMap((q) => [
        `    { let v = a${r}_${q} + bias${q};`,
        ...range(4).map((c) => `      if (n0 + ${4 * q + c}u < N) { O[o + ${4 * q + c}u] = v[${c}]; }`),
        `    }`,
      ]),
      `  }`,
    ];
    const body = [
      `  let M = pu(0u); let K = pu(1u); let N = pu(2u); let gx = pu(4u);`,
      `  let rb = wg / gx;`,
      `  if (rb >= pu(5u)) { return; }`,
      `  let n0 = ((wg - rb * gx) * ${WG}u + lid) * ${tn}u;`,
      `  if (n0 >= N) { return; }`,
      `  let m0 = rb * ${tm}u;`,
      ...cols.map((c) => `  let w${c} = min(n0 + ${c}u, N - 1u) * K;`),
      ...rows.map((r) => `  let x${r} = min(m0 + ${r}u, M - 1u) * K;`),
      ...rows.flatMap((r) => quads.map((q) => `  var a${r}_${q} = vec4<f32>(0.0);`)),
      `  for (var k = 0u; k < K; k++) {`,
      ...cols.map((c) => `    let b${c} = Wt[w${c} + k];`),
      ...rows.map(update),
      `  }`,
      ...quads.map((q) => `  var bias${q} = vec4<f32>(0.0);`),
      `  if (pu(3u) != 0u) {`,
      ...quads.map(bias),
      `  }`,
      ...rows.flatMap(store),
    ];
    return kernelSource(
      [["X", "read", T], ["Wt", "read", T], ["Bs", "read", "f32"], ["O", "read_write", "f32"]],
      body.join("\n"),
    );
  });
}

/**
 * out [M, N] = a [M, K] @ w [N, K]ᵀ (+ bias [N]), float32 sums. With `gpu.tiling` (real GPUs): one
 * workgroup per BM × 64 output tile through workgroup memory, the tiles numbered row-major (so
 * consecutive workgroups share their A rows) and folded by the device into its per-dimension workgroup
 * limit; BM = 8·TM with TM the smallest of 1, 2, 4, 8 covering M/8. Without (CPU adapters): register
 * tiles of 16 × 8 (8 × 8 when M < 16).
 */
export function gemmNT(
  gpu: Gpu,
  a: GpuTensor,
  M: number,
  K: number,
  w: GpuTensor,
  N: number,
  bias: GpuTensor | null,
  out: GpuTensor,
): void {
  if (M === 0 || N === 0) return;
  const vec = K % 4 === 0, Kv = vec ? K / 4 : K, flag = bias ? 1 : 0;
  const b = bias ?? gpu.constant("zeros4", () => new Float32Array(4));
  if (gpu.tiling) {
    const tm = M <= 8 ? 1 : M <= 16 ? 2 : M <= 32 ? 4 : 8;
    const tilesN = Math.ceil(N / BN), tilesM = Math.ceil(M / (TY * tm));
    const words = [M, Kv, N, flag, tilesN, tilesM];
    gpu.dispatch(`linear${vec ? "4" : "1"}x${tm}`, tiledSource(vec, tm), words, [a, w, b, out], tilesN * tilesM);
  } else {
    const tm = M >= RM ? RM : 8;
    const gx = Math.ceil(Math.ceil(N / RN) / WG), rowBlocks = Math.ceil(M / tm);
    const words = [M, Kv, N, flag, gx, rowBlocks];
    gpu.dispatch(`linear${vec ? "4" : "1"}r${tm}`, registerSource(vec, tm, RN), words, [a, w, b, out], gx * rowBlocks);
  }
}

/** x [M, K] @ w [N, K]ᵀ (+ b [N]) -> [M, N]. */
export function linear(gpu: Gpu, { x, M, K, w, N, b }: Args<"linear">): GpuTensor {
  const out = gpu.tensor(M * N);
  gemmNT(gpu, x, M, K, w, N, b, out);
  return out;
}
