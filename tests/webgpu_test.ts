/**
 * @file The webgpu target against the official fixture (its README's webgpu column: logits and
 * attention 5e-5, teacher-forcing input and f̂ 1e-4, images 1e-3, greedy tokens identical) and against
 * the js target with low-rank attention. Skipped, saying why, only where no WebGPU adapter exists.
 */
import assert from "node:assert/strict";
import { findAdapter } from "../cli/compile.ts";
import { compile } from "../compiler/mod.ts";
import { generate } from "../runtime/generate.ts";
import { bindModel, importModel, loadModel } from "../runtime/mod.ts";
import { randomCheckpoint } from "../runtime/random.ts";
import { readSafetensors } from "../runtime/safetensors.ts";
import { assertClose, FIXTURE, maxAbs } from "./_helpers.ts";

const adapter = await findAdapter();
if (!adapter) console.log("webgpu tests skipped: navigator.gpu gives no adapter on this machine");

async function fixtureGpuModel(entries?: string[]) {
  const module = await importModel((await compile("examples/var_tiny_a.var.ts", { target: "webgpu" })).emitted.bundle);
  return await loadModel(module, { var: `${FIXTURE}var.safetensors`, vae: `${FIXTURE}vae.safetensors` }, entries);
}

Deno.test({
  name: "webgpu: teacher-forced forward matches the official logits, input and attention probe",
  ignore: !adapter,
  async fn() {
    const ref = await readSafetensors(`${FIXTURE}reference.safetensors`);
    const model = await fixtureGpuModel(["forward"]);
    const taps = ["blocks.0.attn.q", "blocks.0.attn.o"];
    const r = await model.run("forward", {
      labels: { data: Int32Array.from([3, 7]), shape: [2] },
      idx_BL: { data: ref.i32("tf.idx_BL"), shape: [2, 680] },
    }, { taps });
    assertClose("logits_BLV", r.outputs.logits_BLV!.data, ref.f32("tf.logits_BLV"), 5e-5);
    assertClose("x_BLCv_wo_first_l", r.outputs.x_BLCv_wo_first_l!.data, ref.f32("tf.x_BLCv_wo_first_l"), 1e-4);
    for (const name of ["q", "o"]) {
      const want = ref.f32(`attn.${name}`);
      assertClose(`attn.${name}`, r.taps[`blocks.0.attn.${name}`]!.data.subarray(0, want.length), want, 5e-5);
    }
    assert.match(await model.device(), /./);
  },
});

Deno.test({
  name: "webgpu: greedy generation gives the official tokens, f_hat and image",
  ignore: !adapter,
  async fn() {
    const ref = await readSafetensors(`${FIXTURE}reference.safetensors`);
    const model = await fixtureGpuModel();
    const g = await generate(model, { labels: [3, 7], cfg: 1.5, topK: 1, topP: 0, seed: 0, keepGuided: 3 });
    const want = ref.i32("gen.idx_BL");
    const differing = want.reduce((n, t, i) => n + (t === g.idx[i] ? 0 : 1), 0);
    assert.equal(differing, 0, `${differing} greedy tokens differ`);
    for (let s = 0; s < 3; s++) assertClose(`guided s${s}`, g.guided[s]!, ref.f32(`gen.guided_logits.s${s}`), 5e-5);
    assertClose("f_hat", g.fhat.data, ref.f32("gen.f_hat"), 1e-4);
    assertClose("img", g.img.data, ref.f32("gen.img"), 1e-3);
  },
});

Deno.test({
  name: "webgpu and js agree on the paper-regime model with low-rank attention",
  ignore: !adapter,
  async fn() {
    const spec = "tests/specs/paper_small.var.ts";
    const js = await importModel((await compile(spec)).emitted.bundle);
    const gpu = await importModel((await compile(spec, { target: "webgpu" })).emitted.bundle);
    const files = { var: randomCheckpoint(js, "var", 8), vae: randomCheckpoint(js, "vae", 9) };
    const meta = js.info.meta as { tokens: number; vocab: number };
    const inputs = {
      labels: { data: Int32Array.from([1, 2]), shape: [2] },
      idx_BL: {
        data: Int32Array.from({ length: 2 * meta.tokens }, (_, i) => (i * 31) % meta.vocab),
        shape: [2, meta.tokens],
      },
    };
    const a = (await bindModel(js, files).run("forward", inputs)).outputs.logits_BLV!.data;
    const gm = bindModel(gpu, files);
    const b = (await gm.run("forward", inputs)).outputs.logits_BLV!.data;
    // float32 on both sides, float64 accumulation only on js: 5e-5 relative to the logits' size (the
    // fixture's webgpu logit tolerance) also bounds the low-rank state's float32 accumulation here.
    assertClose("logits js vs webgpu", b, a, 5e-5 * Math.max(1, maxAbs(a)));
    const stats = await gm.guardStats();
    assert.ok(stats.checks > 0 && stats.fallbacks === 0, JSON.stringify(stats));
  },
});

Deno.test("webgpu: a tensor beyond the storage-binding limit is a compile error at its spec node", async () => {
  await assert.rejects(compile("tests/specs/wide.var.ts", { target: "webgpu" }), (e: Error) => {
    assert.match(
      e.message,
      /wide\.var\.ts:4:\d+: error\[webgpu-limit\]: Tensor \[B, 8192, 8192\] of .* needs 256\.0 MiB per batch row, more than the 128 MiB/,
    );
    return true;
  });
  await compile("tests/specs/wide.var.ts", { target: "js" }); // the js target has no such limit
});

Deno.test({
  name: "webgpu generation keeps caches, low-rank states, f̂ and logits on the device, and agrees with js (greedy)",
  ignore: !adapter,
  async fn() {
    const spec = "tests/specs/paper_small.var.ts";
    const js = await importModel((await compile(spec)).emitted.bundle);
    const gpu = await importModel((await compile(spec, { target: "webgpu" })).emitted.bundle);
    const files = { var: randomCheckpoint(js, "var", 8), vae: randomCheckpoint(js, "vae", 9) };
    const meta = js.info.meta as { schedule: number[] };
    const steps = gpu.info.entries.step_1!.inputs.map((i) => i.name);
    assert.ok(steps.some((n) => n !== "labels" && n !== "x_words"), `step_1 takes no carried state: ${steps}`);
    const o = { labels: [1, 2], cfg: 1.5, topK: 1, topP: 0, seed: 0 };
    const a = await generate(bindModel(js, files), o);
    const gm = bindModel(gpu, files);
    assert.equal(gm.tensors.deferred, true);
    const before = await gm.tensors.readStats();
    const b = await generate(gm, o);
    const after = await gm.tensors.readStats();
    assert.deepEqual(b.idx, a.idx);
    assertClose("f_hat js vs webgpu", b.fhat.data, a.fhat.data, 1e-4 * Math.max(1, maxAbs(a.fhat.data)));
    // Read back: the sampled tokens of each scale, then the final f̂ and the image; no logits, cache or state.
    const S = meta.schedule.length;
    assert.equal(after.reads - before.reads, S + 2);
    assert.equal(after.bytes - before.bytes, 4 * (b.idx.length + b.fhat.data.length + b.img.data.length));
    assert.ok(b.fhat.data instanceof Float32Array && b.img.data instanceof Float32Array);
  },
});
