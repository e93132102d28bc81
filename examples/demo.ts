/**
 * @file `deno task demo`: compile the tiny VAR spec, run its teacher-forced forward on the bundled
 * parity checkpoints, and compare with the official PyTorch outputs.
 */
import { compile } from "../compiler/mod.ts";
import { importModel, loadModel } from "../runtime/mod.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { summary, writeArtifacts } from "../cli/compile.ts";

const SPEC = "examples/var_tiny_a.var.ts";
const FIXTURE = new URL("../tests/fixtures/var_tiny_a/", import.meta.url).pathname;
const OUT = "out/demo";

const t0 = performance.now();
const compiled = await compile(SPEC);
await writeArtifacts(compiled, OUT);
console.log(summary(compiled.report, OUT));
console.log(`  compile: ${(performance.now() - t0).toFixed(0)} ms`);

const model = await loadModel(await importModel(compiled.emitted.bundle), {
  var: `${FIXTURE}var.safetensors`,
  vae: `${FIXTURE}vae.safetensors`,
});
const ref = await readSafetensors(`${FIXTURE}reference.safetensors`);
const t1 = performance.now();
const { outputs } = model.run("forward", {
  labels: { data: Int32Array.from([3, 7]), shape: [2] },
  idx_BL: { data: ref.i32("tf.idx_BL"), shape: [2, 680] },
});
console.log(`\nteacher-forced forward, labels 3,7, 680 tokens per image: ${(performance.now() - t1).toFixed(0)} ms`);

const logits = outputs.logits_BLV!.data, official = ref.f32("tf.logits_BLV");
let diff = 0;
for (let i = 0; i < logits.length; i++) diff = Math.max(diff, Math.abs(logits[i]! - official[i]!));
console.log(`max |logits - official PyTorch logits| = ${diff.toExponential(2)} (tolerance 1e-5)`);

// Top-1 predictions of the first scales for image 0, next to the ground-truth pyramid.
const V = 256, idx = ref.i32("tf.idx_BL");
let start = 0;
for (const pn of [1, 2, 3, 4]) {
  const pred: number[] = [];
  for (let t = start; t < start + pn * pn; t++) {
    const row = logits.subarray(t * V, t * V + V);
    pred.push(row.indexOf(Math.max(...row)));
  }
  console.log(
    `  scale ${pn}x${pn}: argmax ${pred.join(",")}  (ground truth ${
      [...idx.subarray(start, start + pn * pn)].join(",")
    })`,
  );
  start += pn * pn;
}
console.log(`\ngenerated code: ${OUT}/model.src.ts (readable) and ${OUT}/model.js (bundled)`);
