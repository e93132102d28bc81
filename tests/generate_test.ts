/**
 * @file Generation and decoding against the official fixture, and on another configuration against
 * the teacher-forced forward and the float64 VQ-VAE reference.
 *
 * Fixture tolerances are its README's js column: greedy tokens identical, guided logits 1e-5,
 * f̂ 2e-5, images 2e-4 (dec.img in [-1, 1]). The KV-cached steps and the masked forward compute
 * the same float32 sums in a different order (concatenated caches vs one masked pass), so their
 * logits agree to float32 rounding: 2e-5 relative to the logits' size is ≥ 10× that.
 */
import assert from "node:assert/strict";
import { compile } from "../compiler/mod.ts";
import { generate } from "../runtime/generate.ts";
import { importModel, loadModel } from "../runtime/mod.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { decode64, fhatFromTokens64, type VaeConfig } from "./reference/vae_f64.ts";
import { assertClose, FIXTURE, maxAbs } from "./_helpers.ts";
import { randomModel } from "../runtime/random.ts";
import { imageSeed } from "../runtime/sample.ts";

Deno.test("generate reproduces the official greedy generation (tokens, guided logits, f_hat, image)", async () => {
  const module = await importModel((await compile("examples/var_tiny_a.var.ts")).emitted.bundle);
  const model = await loadModel(module, { var: `${FIXTURE}var.safetensors`, vae: `${FIXTURE}vae.safetensors` });
  const ref = await readSafetensors(`${FIXTURE}reference.safetensors`);
  const g = await generate(model, { labels: [3, 7], cfg: 1.5, topK: 1, topP: 0, seed: 0, keepGuided: 3 });
  const want = ref.i32("gen.idx_BL");
  const differing = want.reduce((n, t, i) => n + (t === g.idx[i] ? 0 : 1), 0);
  assert.equal(differing, 0, `${differing} of ${want.length} greedy tokens differ`);
  for (let s = 0; s < 3; s++) {
    assertClose(`guided logits s${s}`, g.guided[s]!, ref.f32(`gen.guided_logits.s${s}`), 1e-5);
  }
  assertClose("f_hat", g.fhat.data, ref.f32("gen.f_hat"), 2e-5);
  assert.deepEqual(g.img.shape, [2, 3, 256, 256]);
  assertClose("img", g.img.data, ref.f32("gen.img"), 2e-4);
});

Deno.test("decode matches the official idxBl_to_img (f_hat, image mapped to [0, 1])", async () => {
  const module = await importModel((await compile("examples/var_tiny_a.var.ts")).emitted.bundle);
  const model = await loadModel(module, { vae: `${FIXTURE}vae.safetensors` }, ["tokens_to_fhat", "decode"]);
  const ref = await readSafetensors(`${FIXTURE}reference.safetensors`);
  const fhat = (await model.run("tokens_to_fhat", { idx_BL: { data: ref.i32("dec.idx_BL"), shape: [2, 680] } })).outputs
    .fhat!;
  assertClose("f_hat", fhat.data, ref.f32("dec.f_hat"), 2e-5);
  const img = (await model.run("decode", { fhat })).outputs.img!.data;
  const official01 = ref.f32("dec.img").map((v) => (v + 1) / 2); // dec.img is in [-1, 1]
  assertClose("img", img, official01, 1e-4); // 2e-4 in [-1, 1] units
});

Deno.test("KV-cached generation equals the teacher-forced forward on another configuration", async () => {
  const module = await importModel((await compile("tests/specs/var_shared_512.var.ts")).emitted.bundle);
  const { model, files } = randomModel(module, 5);
  const meta = module.info.meta as unknown as VaeConfig & {
    tokens: number;
    vocab: number;
    vaeCh: number;
    vaeChMult: number[];
    vaeResBlocks: number;
  };
  const labels = [4, 0, 2];
  // cfg 0: the guided logits are the conditional rows of every step, to compare with `forward`.
  const g = await generate(model, { labels, cfg: 0, topK: 4, topP: 0.9, seed: 3, keepGuided: 99 });
  const stepped = new Float32Array(g.guided.reduce((n, a) => n + a.length, 0));
  const B = labels.length, V = meta.vocab, L = meta.tokens;
  let offset = 0; // guided[s] is [B, T_s, V]; forward logits are [B, L, V]
  const byRow = new Float32Array(stepped.length);
  for (const part of g.guided) {
    const T = part.length / (B * V);
    for (let b = 0; b < B; b++) byRow.set(part.subarray(b * T * V, (b + 1) * T * V), (b * L + offset) * V);
    offset += T;
  }
  const forward = (await model.run("forward", {
    labels: { data: Int32Array.from(labels), shape: [B] },
    idx_BL: { data: g.idx, shape: [B, L] },
  })).outputs.logits_BLV!.data;
  assertClose("cached steps vs forward", byRow, forward, 2e-5 * Math.max(1, maxAbs(forward)));

  const cfg = {
    ch: meta.vaeCh,
    chMult: meta.vaeChMult,
    numResBlocks: meta.vaeResBlocks,
    cvae: meta.cvae,
    vocab: V,
    schedule: meta.schedule,
    phiIndex: meta.phiIndex,
  };
  const fhat64 = fhatFromTokens64((n) => files.vae.f32(n), cfg, g.idx, B);
  assertClose("f_hat vs float64", g.fhat.data, fhat64, 2e-5 * Math.max(1, maxAbs(fhat64)));
  const img64 = decode64((n) => files.vae.f32(n), cfg, fhat64, B).map((v) => (v + 1) / 2);
  assertClose("img vs float64", g.img.data, img64, 2e-4);
});

Deno.test("generation is reproducible: same seed, same tokens; another seed, other tokens", async () => {
  const module = await importModel((await compile("tests/specs/markov.var.ts")).emitted.bundle);
  const { model } = randomModel(module, 9);
  const run = async (seed: number) =>
    (await generate(model, { labels: [1, 2], cfg: 1.5, topK: 8, topP: 0.95, seed })).idx;
  assert.deepEqual(await run(1), await run(1));
  assert.notDeepEqual(await run(1), await run(2));
});

Deno.test("per-row seeds: each row of a batch is the one-label generation with its seed, bit for bit", async () => {
  const module = await importModel((await compile("tests/specs/markov.var.ts")).emitted.bundle);
  const { model } = randomModel(module, 9);
  const o = { cfg: 1.5, topK: 8, topP: 0.95, seed: 0 };
  const labels = [1, 2, 0, 2], seeds = [imageSeed(5, 0), imageSeed(5, 1), imageSeed(5, 2), 77];
  const batch = await generate(model, { ...o, labels, seeds });
  const L = batch.idx.length / labels.length, P = batch.img.data.length / labels.length;
  for (const [b, label] of labels.entries()) {
    // The reference is the shared-generator path: one label, `seed` alone, no per-row seeds.
    const one = await generate(model, { ...o, labels: [label], seed: seeds[b]! });
    assert.deepEqual(batch.idx.subarray(b * L, (b + 1) * L), one.idx, `row ${b} tokens`);
    assert.deepEqual(batch.img.data.subarray(b * P, (b + 1) * P), one.img.data, `row ${b} image`);
  }
  // Rows 1 and 3 share a label but not a seed: they must differ (the seeds are used, not the row's label).
  assert.notDeepEqual(batch.idx.subarray(L, 2 * L), batch.idx.subarray(3 * L, 4 * L));
  await assert.rejects(
    () => generate(model, { ...o, labels, seeds: [1, 2] }),
    /seeds: one per label, got 2 for 4 labels/,
  );
});
