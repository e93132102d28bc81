/**
 * @file `deno task bench:webgpu`: the webgpu and js targets side by side, in one run: GEMM GFLOP/s,
 * exact attention time (16 heads, d 64, block-causal over the 256- and 512-px schedules), and seconds
 * per image for the tiny model (and, with `--d16`, the d16-shaped model) on seeded random weights.
 */
import { compile } from "../compiler/mod.ts";
import { generate } from "../runtime/generate.ts";
import { attention, linear, scaleKeyRanges } from "../runtime/js/kernels.ts";
import { bindModel, importModel } from "../runtime/mod.ts";
import { randomCheckpoint, randomF32 } from "../runtime/random.ts";
import { Gpu } from "../runtime/webgpu/device.ts";
import * as G from "../runtime/webgpu/kernels.ts";

const gpu = await Gpu.create();
console.log(
  `adapter: ${gpu.info}; GEMM and attention ${gpu.tiling ? "tiled through workgroup memory" : "register-only"}; ` +
    `${navigator.hardwareConcurrency} CPU cores; ${new Date().toISOString()}`,
);

async function median(runs: number, f: () => Promise<unknown> | unknown): Promise<number> {
  const times: number[] = [];
  await f(); // warm-up (and the one-off shader JIT on llvmpipe)
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await f();
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
}

console.log("\n| GEMM n | js GFLOP/s | webgpu GFLOP/s | webgpu / js |\n|---|---|---|---|");
for (const n of [256, 512, 1024]) {
  const a = randomF32(n * n, 1), b = randomF32(n * n, 2);
  const ga = gpu.upload(a), gb = gpu.upload(b);
  const js = await median(3, () => linear({ x: a, M: n, K: n, w: b, N: n, b: null, act: "none" }));
  const wg = await median(
    3,
    async () => await gpu.read(G.linear(gpu, { x: ga, M: n, K: n, w: gb, N: n, b: null, act: "none" })),
  );
  const gf = (ms: number) => (2 * n ** 3) / ms / 1e6;
  console.log(`| ${n} | ${gf(js).toFixed(2)} | ${gf(wg).toFixed(2)} | ${(js / wg).toFixed(2)}× |`);
}

console.log("\n| attention (16 heads, d 64) | L | js ms | webgpu ms | webgpu / js |\n|---|---|---|---|---|");
for (
  const [name, schedule] of [["256px", [1, 2, 3, 4, 5, 6, 8, 10, 13, 16]], ["512px", [
    1,
    2,
    3,
    4,
    6,
    9,
    13,
    18,
    24,
    32,
  ]]] as const
) {
  const L = schedule.reduce((s, n) => s + n * n, 0), H = 16, D = 64;
  const [q, k, v] = [1, 2, 3].map((s) => randomF32(H * L * D, s, 0.1));
  const ranges = scaleKeyRanges(schedule, Infinity);
  const [gq, gk, gv] = [q!, k!, v!].map((x) => gpu.upload(x));
  const js = await median(1, () => attention({ q: q!, k: k!, v: v!, BH: H, Tq: L, Tk: L, D, Dv: D, scale: 1, ranges }));
  const wg = await median(
    1,
    async () =>
      await gpu.read(G.attention(gpu, { q: gq!, k: gk!, v: gv!, BH: H, Tq: L, Tk: L, D, Dv: D, scale: 1, ranges })),
  );
  console.log(`| ${name} | ${L} | ${js.toFixed(0)} | ${wg.toFixed(0)} | ${(js / wg).toFixed(2)}× |`);
}

const specs = ["examples/var_tiny_a.var.ts", ...(Deno.args.includes("--d16") ? ["examples/var_d16.var.ts"] : [])];
console.log("\n| model | target | seconds per image | transformer s | decode s |\n|---|---|---|---|---|");
for (const spec of specs) {
  for (const target of ["js", "webgpu"] as const) {
    const module = await importModel((await compile(spec, { target })).emitted.bundle);
    const files = { var: randomCheckpoint(module, "var", 1), vae: randomCheckpoint(module, "vae", 2) };
    const model = bindModel(module, files);
    const t = performance.now();
    const g = await generate(model, { labels: [0], cfg: 1.5, topK: 100, topP: 0.96, seed: 0 });
    const s = (performance.now() - t) / 1000;
    console.log(
      `| ${spec} | ${target} | ${s.toFixed(2)} | ${(g.timings.transformer / 1000).toFixed(2)} | ${
        (g.timings.decode / 1000).toFixed(2)
      } |`,
    );
  }
}
