/**
 * @file Teacher-forced forward on the JS target against the official fixture and the float64 reference.
 *
 * Tolerances for the fixture are its README's js column (max |diff|): logits and attention tensors
 * 1e-5, the teacher-forcing input 2e-5. For the float64 reference on random weights, the JS target
 * stores every intermediate in float32 (relative rounding 2^-24 ≈ 6e-8) through ~10 reductions per
 * block; 2e-5 relative to the output's magnitude leaves ≥ 10× margin over that rounding, while
 * any semantic slip (GELU flavour, eps, chunk order) moves outputs by ≥ 1e-4 relative.
 */
import assert from "node:assert/strict";
import { importModel } from "../runtime/mod.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { teacherForcingInput64, type VarConfig, varForward64 } from "./reference/var_f64.ts";
import { compile } from "../compiler/mod.ts";
import { assertClose, FIXTURE, fixtureModel, maxAbs } from "./_helpers.ts";
import { randomModel } from "../runtime/random.ts";

const TAPS = ["x_in", "q", "k", "v", "o", "out"].map((t) => `blocks.0.attn.${t}`);

Deno.test("forward matches the official teacher-forced logits, input and attention probe (var_tiny_a)", async () => {
  const ref = await readSafetensors(`${FIXTURE}reference.safetensors`);
  const model = await fixtureModel();
  const idx = ref.i32("tf.idx_BL");
  const { outputs, taps } = await model.run("forward", {
    labels: { data: Int32Array.from([3, 7]), shape: [2] },
    idx_BL: { data: idx, shape: [2, 680] },
  }, { taps: TAPS });
  assert.deepEqual(outputs.logits_BLV!.shape, [2, 680, 256]);
  assertClose("logits_BLV", outputs.logits_BLV!.data, ref.f32("tf.logits_BLV"), 1e-5);
  assertClose("x_BLCv_wo_first_l", outputs.x_BLCv_wo_first_l!.data, ref.f32("tf.x_BLCv_wo_first_l"), 2e-5);
  // Probes are batch element 0: the first 1/B of each tapped tensor ([B, H, L, D] or [B, L, C]).
  for (const name of ["x_in", "q", "k", "v", "o", "out"]) {
    const want = ref.f32(`attn.${name}`);
    const got = taps[`blocks.0.attn.${name}`]!.data.subarray(0, want.length);
    assertClose(`attn.${name}`, got, want, 1e-5);
  }
});

Deno.test("forward rejects inputs that do not match the compiled model", async () => {
  const model = await fixtureModel();
  const labels = { data: Int32Array.from([3]), shape: [1] };
  assert.throws(
    () => model.run("forward", { labels, idx_BL: { data: new Int32Array(680 * 2), shape: [2, 680] } }),
    /shape \[2,680\]/,
  );
  assert.throws(() => model.run("forward", { labels }), /missing input "idx_BL"/);
  const bad = new Int32Array(680).fill(256);
  assert.throws(
    () => model.run("forward", { labels, idx_BL: { data: bad, shape: [1, 680] } }),
    /index 256 .* out of range \[0, 256\)/,
  );
});

Deno.test("forward agrees with the float64 reference on a shared-AdaLN, 512-schedule variant", async () => {
  const spec = "tests/specs/var_shared_512.var.ts";
  const compiled = await compile(spec);
  const module = await importModel(compiled.emitted.bundle);
  const { model, files } = randomModel(module, 11);
  const meta = module.info.meta as unknown as VarConfig & { tokens: number };
  const B = 2, L = meta.tokens;
  const idx = Int32Array.from({ length: B * L }, (_, i) => (i * 7919) % meta.vocab);
  const labels = [1, 4];
  const { outputs } = await model.run("forward", {
    labels: { data: Int32Array.from(labels), shape: [B] },
    idx_BL: { data: idx, shape: [B, L] },
  });

  const xTF = teacherForcingInput64((n) => files.vae.f32(n), meta, idx, B);
  const { logits } = varForward64((n) => files.var.f32(n), meta, labels, xTF);
  assertClose("x_tf vs float64", outputs.x_BLCv_wo_first_l!.data, xTF, 2e-5 * Math.max(1, maxAbs(xTF)));
  assertClose("logits vs float64", outputs.logits_BLV!.data, logits, 2e-5 * Math.max(1, maxAbs(logits)));
});
