/**
 * @file `--calibrate N`: run N sample generations with exact attention and record, per attention
 * block and head, the largest ‖q_i‖₂ and ‖k_j‖₂ seen. Not a proof: low-rank kernels compiled from
 * it keep their run-time guard.
 */
import { generate } from "./generate.ts";
import { bindModel, type HostTensor, type ModelModule } from "./mod.ts";
import { rng } from "./random.ts";
import type { SafetensorsFile } from "./safetensors.ts";

/** Per q label: the max row norms of q and of the matching k, per head. */
export type Calibration = Record<string, { q: number[]; k: number[] }>;

/** Max ‖row‖₂ per head of a [B, H, T, D] tensor. */
export function headNorms(t: HostTensor): number[] {
  const [b, h, tt, d] = t.shape as number[];
  const out = new Array<number>(h!).fill(0);
  for (let bi = 0; bi < b!; bi++) {
    for (let hi = 0; hi < h!; hi++) {
      for (let i = 0; i < tt!; i++) {
        let s = 0;
        const base = ((bi * h! + hi) * tt! + i) * d!;
        for (let c = 0; c < d!; c++) s += t.data[base + c]! ** 2;
        out[hi] = Math.max(out[hi]!, Math.sqrt(s));
      }
    }
  }
  return out;
}

/** Runs `runs` generations (random labels, seeds 0..runs-1, cfg 1.5, top-k 900) and returns the norms. */
export async function calibrate(
  module: ModelModule,
  files: Partial<Record<"var" | "vae", SafetensorsFile>>,
  runs: number,
): Promise<Calibration> {
  const model = bindModel(module, files);
  const meta = module.info.meta as { classes: number; vocab: number };
  const qLabels = [
    ...new Set(Object.values(module.info.entries).flatMap((e) => e.labels.filter((l) => l.endsWith(".q")))),
  ];
  const out: Calibration = {};
  const r = rng(7);
  for (let run = 0; run < runs; run++) {
    const label = Math.floor(r.uniform() * meta.classes);
    await generate(model, {
      labels: [label],
      cfg: 1.5,
      topK: Math.min(900, meta.vocab),
      topP: 0.96,
      seed: run,
      taps: qLabels.flatMap((q) => [q, q.replace(/\.q$/, ".k")]),
      onTaps: (taps) => {
        for (const q of qLabels) {
          const qt = taps[q], kt = taps[q.replace(/\.q$/, ".k")];
          if (!qt || !kt) continue;
          const [qn, kn] = [headNorms(qt), headNorms(kt)];
          const prev = out[q] ?? { q: qn.map(() => 0), k: kn.map(() => 0) };
          out[q] = { q: qn.map((v, h) => Math.max(v, prev.q[h]!)), k: kn.map((v, h) => Math.max(v, prev.k[h]!)) };
        }
      },
    });
  }
  return out;
}
