/**
 * @file The shipped glyph model against the official PyTorch code run on the same trained weights
 * (`tests/fixtures/glyphs_standard/`, made by `tools/train/make_glyph_fixture.py`; see its README).
 *
 * Tolerances are the var_tiny_a fixture's, scaled where trained weights make values larger: greedy
 * tokens identical (the fixture records the smallest top-1/top-2 gap of the guided logits, far above
 * their error); logits within 1e-6 of their largest magnitude per unit, i.e. float32 sums taken in
 * another order through 4 blocks (u = 6e-8, a few hundred terms per dot product, ≥ 10× margin);
 * f̂ 2e-5 and images 2e-4 (in [0, 1]; dec.img is stored in [-1, 1]).
 */
import assert from "node:assert/strict";
import { generate } from "../runtime/generate.ts";
import { loadModel } from "../runtime/mod.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { assertClose, compileModule, maxAbs } from "./_helpers.ts";

const FIXTURE = new URL("./fixtures/glyphs_standard/", import.meta.url).pathname;
const SPEC = "examples/glyphs/standard.var.ts";
const WEIGHTS = { var: "examples/glyphs/var_standard.safetensors", vae: "examples/glyphs/vae.safetensors" };
const config = JSON.parse(await Deno.readTextFile(`${FIXTURE}config.json`)) as {
  labels: number[];
  sampling: { cfg: number; top_k: number; top_p: number; g_seed: number };
};

Deno.test("glyph model: greedy generation equals the official code's (tokens, f̂, image)", async () => {
  const model = await loadModel(await compileModule(SPEC), WEIGHTS);
  const ref = await readSafetensors(`${FIXTURE}reference.safetensors`);
  const s = config.sampling;
  const g = await generate(model, { labels: config.labels, cfg: s.cfg, topK: s.top_k, topP: s.top_p, seed: s.g_seed });
  const want = ref.i32("gen.idx_BL");
  const differing = want.reduce((n, t, i) => n + (t === g.idx[i] ? 0 : 1), 0);
  assert.equal(differing, 0, `${differing} of ${want.length} greedy tokens differ`);
  assertClose("f_hat", g.fhat.data, ref.f32("gen.f_hat"), 2e-5);
  assertClose("img", g.img.data, ref.f32("gen.img"), 2e-4);
});

Deno.test("glyph model: teacher-forced logits and decode of a real glyph pyramid equal the official code's", async () => {
  const model = await loadModel(await compileModule(SPEC), WEIGHTS);
  const ref = await readSafetensors(`${FIXTURE}reference.safetensors`);
  const idx = ref.i32("tf.idx_BL"), B = config.labels.length, L = idx.length / B;
  const out = await model.run("forward", {
    labels: { data: Int32Array.from(config.labels), shape: [B] },
    idx_BL: { data: idx, shape: [B, L] },
  });
  const want = ref.f32("tf.logits_BLV");
  assertClose("logits", out.outputs.logits_BLV!.data, want, 1e-6 * Math.max(1, maxAbs(want)) * 10);
  const fhat = (await model.run("tokens_to_fhat", { idx_BL: { data: idx, shape: [B, L] } })).outputs.fhat!;
  const img = (await model.run("decode", { fhat })).outputs.img!.data;
  assertClose("img", img, ref.f32("dec.img").map((v) => (v + 1) / 2), 1e-4); // 2e-4 in [-1, 1] units
});
