/** Validates the float64 VQ-VAE reference against the official PyTorch fixture var_tiny_a. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { f32, fixtureDir, maxAbsDiff, readTensors } from "./_fixture.ts";
import { decode64, fhatFromTokens64, type VaeConfig } from "./vae_f64.ts";

const dir = fixtureDir();
const config = JSON.parse(readFileSync(dir + "config.json", "utf8"));
const cfg: VaeConfig = {
  ch: config.vae.ch,
  chMult: config.vae.ch_mult,
  numResBlocks: config.vae.num_res_blocks,
  cvae: config.vae.Cvae,
  vocab: config.vae.vocab_size,
  schedule: config.vae.v_patch_nums,
  phiIndex: config.vae.phi_index_per_scale,
};
const vae = f32(readTensors(dir + "vae.safetensors"));
const refMap = readTensors(dir + "reference.safetensors");
const ref = f32(refMap);
const tokens = (name: string) => Int32Array.from(refMap.get(name) as BigInt64Array, Number); // [B, L]
const batch = 2;

Deno.test("fhatFromTokens64 matches embed_to_fhat (dec and gen pyramids)", () => {
  for (const prefix of ["dec", "gen"]) {
    const fhat = fhatFromTokens64(vae, cfg, tokens(`${prefix}.idx_BL`), batch);
    const diff = maxAbsDiff(fhat, ref(`${prefix}.f_hat`));
    console.log(`${prefix}.f_hat max |diff| ${diff.toExponential(3)}`);
    assert.ok(diff <= 2e-5, `${prefix}.f_hat max |diff| ${diff}`);
  }
});

Deno.test("decode64 matches idxBl_to_img output in [-1, 1] (dec.img)", () => {
  const img = decode64(vae, cfg, Float64Array.from(ref("dec.f_hat")), batch);
  assert.equal(img.length, batch * 3 * 256 * 256);
  const diff = maxAbsDiff(img, ref("dec.img"));
  console.log(`dec.img max |diff| ${diff.toExponential(3)}`);
  assert.ok(diff <= 2e-4, `dec.img max |diff| ${diff}`);
});

Deno.test("(decode64 + 1) / 2 matches autoregressive_infer_cfg image in [0, 1] (gen.img)", () => {
  const img = decode64(vae, cfg, Float64Array.from(ref("gen.f_hat")), batch).map((v) => (v + 1) / 2);
  const diff = maxAbsDiff(img, ref("gen.img"));
  console.log(`gen.img max |diff| ${diff.toExponential(3)}`);
  assert.ok(diff <= 2e-4, `gen.img max |diff| ${diff}`);
});
