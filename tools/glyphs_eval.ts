/**
 * @file `deno task eval:glyphs [--per-class 20] [--out out/eval]`: the numbers of the glyph model card.
 *
 * 1. Samples: for the standard model, the bounded model as compiled (low-rank attention) and the
 *    bounded model with exact attention, `--per-class` images of every class (one batch of all
 *    classes per seed 0…N−1), written as `OUT/<run>/seed_<k>.safetensors` (img, idx_BL; labels in
 *    the metadata) for `tools/train/classifier.py score`, which this script runs when the classifier
 *    has been trained (`out/train/classifier.pt`).
 * 2. Low-rank against exact on the bounded model, same seeds: token agreement per scale and image
 *    differences.
 * 3. The attention error against its bound: block 0 of the teacher-forced `forward` on a real token
 *    pyramid (the parity fixture's, from held-out glyphs) sees the same input on both paths, so its
 *    output differs only by the approximation, which the compile report bounds by 2ε/(1−ε)·‖V‖∞.
 *
 * Writes OUT/summary.json and prints it.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { compile } from "../compiler/mod.ts";
import type { CompileOptions } from "../compiler/options.ts";
import { generate, type Generation } from "../runtime/generate.ts";
import { importModel, type LoadedModel, loadModel } from "../runtime/mod.ts";
import { readSafetensors, writeSafetensors } from "../runtime/safetensors.ts";

const DIR = "examples/glyphs";
const VAE = `${DIR}/vae.safetensors`;
const FIXTURE = "tests/fixtures/glyphs_standard/reference.safetensors";
const SETTINGS = { cfg: 2, topK: 20, topP: 0.6 }; // the demo's settings
const RUNS = [
  { run: "standard", spec: `${DIR}/standard.var.ts`, var: `${DIR}/var_standard.safetensors`, attention: "auto" },
  { run: "bounded_lowrank", spec: `${DIR}/bounded.var.ts`, var: `${DIR}/var_bounded.safetensors`, attention: "auto" },
  { run: "bounded_exact", spec: `${DIR}/bounded.var.ts`, var: `${DIR}/var_bounded.safetensors`, attention: "exact" },
] as const;

const { values } = parseArgs({ options: { "per-class": { type: "string" }, out: { type: "string" } } });
const perClass = Number(values["per-class"] ?? 20), out = values.out ?? "out/eval";

async function build(spec: string, var_: string, attention: CompileOptions["attention"]) {
  const compiled = await compile(spec, { attention });
  const model = await loadModel(await importModel(compiled.emitted.bundle), { var: var_, vae: VAE });
  return { compiled, model };
}

const summary: Record<string, unknown> = { settings: { ...SETTINGS, perClass } };
const samples: Record<string, Generation[]> = {};
const built: Record<string, Awaited<ReturnType<typeof build>>> = {}; // kept for the comparisons below
for (const r of RUNS) {
  const { compiled, model } = built[r.run] = await build(r.spec, r.var, r.attention);
  const meta = compiled.module.meta as unknown as { classes: number; classNames: string };
  const labels = Array.from({ length: meta.classes }, (_, c) => c);
  await Deno.mkdir(join(out, r.run), { recursive: true });
  const t0 = performance.now();
  samples[r.run] = [];
  for (let seed = 0; seed < perClass; seed++) {
    const g = await generate(model, { ...SETTINGS, labels, seed });
    samples[r.run]!.push(g);
    await Deno.writeFile(
      join(out, r.run, `seed_${seed}.safetensors`),
      writeSafetensors([
        { name: "idx_BL", dtype: "I32", shape: [labels.length, g.idx.length / labels.length], data: g.idx },
        { name: "img", dtype: "F32", shape: g.img.shape, data: g.img.data as Float32Array },
      ], { labels: labels.join(","), seed: String(seed), spec: r.spec, attention: r.attention }),
    );
  }
  const seconds = (performance.now() - t0) / 1000;
  const decisions = compiled.report.attention.filter((a) => a.block.startsWith("blocks.")).map((a) => a.decision);
  summary[r.run] = { images: labels.length * perClass, seconds, decisions };
  console.log(`${r.run}: ${labels.length * perClass} images in ${seconds.toFixed(1)} s; attention ${decisions}`);
}

// 2. Low-rank vs exact on the bounded model.
{
  const low = samples.bounded_lowrank!, ex = samples.bounded_exact!;
  const meta = built.bounded_lowrank!.compiled.module.meta as unknown as { schedule: number[]; tokens: number };
  const perScale = meta.schedule.map(() => ({ same: 0, all: 0 }));
  let imgMax = 0, imgSum = 0, imgN = 0, identical = 0, images = 0;
  for (let k = 0; k < low.length; k++) {
    const a = low[k]!, b = ex[k]!, B = a.idx.length / meta.tokens;
    for (let i = 0; i < B; i++) {
      let at = 0, same = true;
      meta.schedule.forEach((pn, s) => {
        for (let t = 0; t < pn * pn; t++, at++) {
          const eq = a.idx[i * meta.tokens + at] === b.idx[i * meta.tokens + at];
          perScale[s]!.same += eq ? 1 : 0, perScale[s]!.all++;
          same &&= eq;
        }
      });
      identical += same ? 1 : 0, images++;
    }
    const x = a.img.data, y = b.img.data;
    for (let j = 0; j < x.length; j++) {
      const d = Math.abs(x[j]! - y[j]!);
      imgMax = Math.max(imgMax, d), imgSum += d, imgN++;
    }
  }
  summary.lowrank_vs_exact = {
    tokenAgreementPerScale: perScale.map((p, s) => ({ side: meta.schedule[s], agreement: p.same / p.all })),
    identicalImages: identical,
    images,
    imageMeanAbsDiff: imgSum / imgN,
    imageMaxAbsDiff: imgMax,
  };
}

// 3. Block 0's attention error against its bound, teacher-forced on a real pyramid.
{
  const ref = await readSafetensors(FIXTURE);
  const idx = ref.i32("tf.idx_BL");
  const B = 2, L = idx.length / B;
  const inputs = { labels: { data: Int32Array.from([3, 17]), shape: [B] }, idx_BL: { data: idx, shape: [B, L] } };
  const low = built.bounded_lowrank!, ex = built.bounded_exact!;
  const rows = [];
  for (const row of low.compiled.report.attention.filter((a) => a.decision === "lowrank")) {
    const taps = [`${row.block}.o`, `${row.block}.v`];
    const run = async (m: LoadedModel) => (await m.run("forward", inputs, { taps })).taps;
    const [a, b] = [await run(low.model), await run(ex.model)];
    let vMax = 0, err = 0;
    for (const v of b[`${row.block}.v`]!.data) vMax = Math.max(vMax, Math.abs(v));
    const o1 = a[`${row.block}.o`]!.data, o2 = b[`${row.block}.o`]!.data;
    for (let j = 0; j < o1.length; j++) err = Math.max(err, Math.abs(o1[j]! - o2[j]!));
    rows.push({
      block: row.block,
      degree: row.degree,
      rank: row.rank,
      errorFactor: row.errorFactor,
      vMax,
      bound: row.errorFactor! * vMax,
      measured: err,
      sameInput: row.block === "blocks.0.attn",
    });
  }
  summary.attention_error = rows;
}

await Deno.writeTextFile(join(out, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
console.log(JSON.stringify(summary, null, 2));

// 4. Classifier scores, when the classifier exists (Python, the training tools' own).
const classifier = "out/train/classifier.pt";
if (await Deno.stat(classifier).then(() => true, () => false)) {
  for (const r of RUNS) {
    const files = Array.from({ length: perClass }, (_, k) => join(out, r.run, `seed_${k}.safetensors`));
    const p = new Deno.Command("/usr/bin/python3", {
      args: ["tools/train/classifier.py", "score", "--out", "out/train", ...files],
      stdout: "piped",
    });
    const text = new TextDecoder().decode((await p.output()).stdout).trim();
    console.log(`${r.run}: ${text}`);
    await Deno.writeTextFile(join(out, r.run, "score.json"), text + "\n");
  }
} else {
  console.log(`no ${classifier}: train it with tools/train/classifier.py train, then rerun`);
}
