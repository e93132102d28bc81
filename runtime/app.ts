/**
 * @file The loader API of a bundled spec module (`varc bundle`, the esbuild plugin): checkpoint bytes
 * from URLs (streamed, with progress) or Deno file paths, binding, generation, and RGBA conversion of
 * an image. Bundled as `varc:app` beside the generated module; the bundle's `.d.ts` declares these
 * from the types here (`compiler/backends/module_exports.ts`).
 */
import { bindModel, type HostTensor, type LoadedModel, type ModelModule } from "./mod.ts";
import { parseSafetensors, type SafetensorsFile } from "./safetensors.ts";
import { checkpointBytes, type WeightSource } from "./checkpoint_bytes.ts";
export { generate } from "./generate.ts";
export { fetchBytes } from "./checkpoint_bytes.ts";

/** The two checkpoints, each as bytes, a URL, or (in Deno) a file path. */
export type Weights = { var?: WeightSource; vae?: WeightSource };
/** Options of `load`. */
export interface LoadOptions {
  /** Only bind the tensors these entries read (e.g. `["decode"]` needs no VAR checkpoint). */
  readonly entries?: readonly string[];
  /** Progress of each checkpoint read or fetched (total: the file size, or the Content-Length when sent). */
  readonly onProgress?: (p: { file: "var" | "vae"; loaded: number; total?: number }) => void;
}

/** An image as `ImageData` wants it: RGBA bytes, row-major. */
export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8ClampedArray<ArrayBuffer>;
}

/** Reads the checkpoints and binds them to the generated module. */
export async function load(module: ModelModule, weights: Weights, options: LoadOptions = {}): Promise<LoadedModel> {
  const files: Partial<Record<"var" | "vae", SafetensorsFile>> = {};
  await Promise.all((["var", "vae"] as const).map(async (which) => {
    const source = weights[which];
    if (source === undefined) return;
    const progress = (loaded: number, total?: number) => options.onProgress?.({ file: which, loaded, total });
    const bytes = await checkpointBytes(source, progress);
    const name = typeof source === "string" || source instanceof URL ? String(source) : `${which} checkpoint`;
    files[which] = parseSafetensors(bytes, name);
  }));
  return bindModel(module, files, options.entries);
}

/** Image `index` of img [B, 3, H, W] in [0, 1] as RGBA bytes, rounded as `toPng` does (for ImageData). */
export function toRgba(img: HostTensor, index = 0): RgbaImage {
  const [, c, height, width] = img.shape as [number, number, number, number];
  if (c !== 3) throw new RangeError(`Expected 3 colour channels, got ${c}`);
  const plane = height * width, base = index * 3 * plane;
  const data = new Uint8ClampedArray(plane * 4);
  for (let p = 0; p < plane; p++) {
    for (let ch = 0; ch < 3; ch++) {
      data[p * 4 + ch] = Math.round(Math.min(1, Math.max(0, img.data[base + ch * plane + p]!)) * 255);
    }
    data[p * 4 + 3] = 255;
  }
  return { width, height, data };
}
