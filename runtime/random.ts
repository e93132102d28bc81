/** @file Seeded random numbers and random checkpoints in official layout (demo, benchmarks, tests). */
import { residentBytes } from "./js/wasm/gemm.ts";
import { bindModel, type LoadedModel, type ModelModule } from "./mod.ts";
import { parseSafetensors, type SafetensorsFile, writeSafetensors } from "./safetensors.ts";

/** Uniform in [0, 1) and standard normal draws from a 32-bit seed (mulberry32 + Box–Muller). */
export function rng(seed: number): { uniform(): number; normal(): number } {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

/** n normal draws times `scale`, as float32. */
export function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r.normal() * scale;
  return out;
}

/**
 * Random weights (normal × `scale`) for every tensor of one checkpoint the model declares; the
 * attention log-temperatures get log U(2, 10), so τ is in [2, 10] as in the parity fixture.
 */
export function randomCheckpoint(
  module: ModelModule,
  source: "var" | "vae",
  seed: number,
  scale = 0.3,
): SafetensorsFile {
  const r = rng(seed);
  const tensors = module.info.params.filter((p) => p.source === source).map((p, i) => {
    const n = p.shape.reduce((a, d) => a * d, 1);
    const data = p.name.endsWith("scale_mul_1H11")
      ? Float32Array.from({ length: n }, () => Math.log(2 + 8 * r.uniform()))
      : randomF32(n, seed * 7919 + i, scale);
    return { name: p.name, dtype: "F32" as const, shape: p.shape, data };
  });
  const bytes = writeSafetensors(tensors);
  // js target: in the WebAssembly memory, where the kernels read weights in place
  const home = module.info.target === "webgpu" ? null : residentBytes(bytes.length);
  home?.set(bytes);
  return parseSafetensors(home ?? bytes, `random-${source}-${seed}`);
}

/** The model bound to seeded random VAR and VQ-VAE checkpoints. */
export function randomModel(
  module: ModelModule,
  seed: number,
): { model: LoadedModel; files: Record<"var" | "vae", SafetensorsFile> } {
  const files = { var: randomCheckpoint(module, "var", seed), vae: randomCheckpoint(module, "vae", seed + 1) };
  return { model: bindModel(module, files), files };
}
