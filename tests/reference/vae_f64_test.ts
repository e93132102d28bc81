/** Validates the float64 VQ-VAE reference against the official PyTorch fixture var_tiny_a. */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { decode64, fhatFromTokens64, type VaeConfig, type Weights } from "./vae_f64.ts";

/** Fixture folder: the in-repo copy if present, else the shared original. */
function fixtureDir(): string {
  for (const rel of ["../fixtures/var_tiny_a/", "../../../shared/fixtures/var_tiny_a/"]) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(dir + "vae.safetensors")) return dir;
  }
  throw new Error("fixture var_tiny_a not found");
}

/** Minimal safetensors reader (F32 and I64 only): name -> Float32Array | BigInt64Array (copies). */
function readSafetensors(path: string): Map<string, Float32Array | BigInt64Array> {
  const bytes = readFileSync(path);
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const n = Number(new DataView(buf).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
  const out = new Map<string, Float32Array | BigInt64Array>();
  for (const [name, info] of Object.entries(header) as [string, { dtype: string; data_offsets: number[] }][]) {
    if (name === "__metadata__") continue;
    const [a, z] = info.data_offsets;
    const raw = buf.slice(8 + n + a, 8 + n + z);
    if (info.dtype === "F32") out.set(name, new Float32Array(raw));
    else if (info.dtype === "I64") out.set(name, new BigInt64Array(raw));
    else throw new Error(`${name}: unsupported dtype ${info.dtype}`);
  }
  return out;
}

/** Accessor over a safetensors map that throws on missing or non-F32 names. */
function f32(map: Map<string, Float32Array | BigInt64Array>): Weights {
  return (name) => {
    const t = map.get(name);
    if (!(t instanceof Float32Array)) throw new Error(`missing F32 tensor ${name}`);
    return t;
  };
}

/** max |a - b| over equal-length arrays. */
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

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
const vae = f32(readSafetensors(dir + "vae.safetensors"));
const refMap = readSafetensors(dir + "reference.safetensors");
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
