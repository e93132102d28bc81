/** Validates the float64 VAR reference against the official PyTorch fixture var_tiny_a. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { f32, fixtureDir, maxAbsDiff, readTensors } from "./_fixture.ts";
import { teacherForcingInput64, type VarConfig, varForward64 } from "./var_f64.ts";

const dir = fixtureDir();
const config = JSON.parse(readFileSync(dir + "config.json", "utf8"));
const refJson = JSON.parse(readFileSync(dir + "reference.json", "utf8"));
const cfg: VarConfig = {
  depth: config.var.depth,
  width: config.var.embed_dim,
  heads: config.var.num_heads,
  mlpRatio: config.var.mlp_ratio,
  classes: config.var.num_classes,
  vocab: config.vae.vocab_size,
  cvae: config.vae.Cvae,
  schedule: config.var.patch_nums,
  sharedAdaLN: config.var.shared_aln,
  normEps: config.var.norm_eps,
  phiIndex: config.vae.phi_index_per_scale,
};
const ref = readTensors(dir + "reference.safetensors");
const refF32 = f32(ref);
const labels: number[] = refJson.tf.labels;
const idx = Int32Array.from(ref.get("tf.idx_BL") as BigInt64Array, Number); // [B, L]

Deno.test("teacherForcingInput64 matches idxBl_to_var_input", () => {
  const vae = f32(readTensors(dir + "vae.safetensors"));
  const x = teacherForcingInput64(vae, cfg, idx, labels.length); // [B, L - 1, Cvae]
  const diff = maxAbsDiff(x, refF32("tf.x_BLCv_wo_first_l"));
  assert.ok(diff <= 2e-5, `tf.x_BLCv_wo_first_l max |diff| ${diff}`);
});

Deno.test("varForward64 matches VAR.forward logits and the block-0 attention probe", () => {
  const vae = f32(readTensors(dir + "vae.safetensors"));
  const w = f32(readTensors(dir + "var.safetensors"));
  const x = teacherForcingInput64(vae, cfg, idx, labels.length); // [B, L - 1, Cvae]
  const { logits, probe } = varForward64(w, cfg, labels, x);
  const checks: [string, Float64Array][] = [
    ["tf.logits_BLV", logits],
    ["attn.x_in", probe.xIn],
    ["attn.q", probe.q],
    ["attn.k", probe.k],
    ["attn.v", probe.v],
    ["attn.o", probe.o],
    ["attn.out", probe.out],
  ];
  for (const [name, got] of checks) {
    const diff = maxAbsDiff(got, refF32(name));
    assert.ok(diff <= 1e-5, `${name} max |diff| ${diff}`);
  }
});
