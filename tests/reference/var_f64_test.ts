/** Validates the float64 VAR reference against the official PyTorch fixture var_tiny_a. */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { teacherForcingInput64, type VarConfig, varForward64, type Weights } from "./var_f64.ts";

/** Fixture folder: the in-repo copy if present, else the shared original. */
function fixtureDir(): string {
  for (
    const rel of [
      "../fixtures/var_tiny_a/",
      "../../../shared/fixtures/var_tiny_a/",
    ]
  ) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(dir + "var.safetensors")) return dir;
  }
  throw new Error("fixture var_tiny_a not found");
}

/** Minimal safetensors reader (F32 and I64 only): name -> Float32Array | BigInt64Array (copies). */
function readSafetensors(
  path: string,
): Map<string, Float32Array | BigInt64Array> {
  const bytes = readFileSync(path);
  const buf = bytes.buffer.slice(
    bytes.byteOffset,
    bytes.byteOffset + bytes.byteLength,
  );
  const n = Number(new DataView(buf).getBigUint64(0, true));
  const header = JSON.parse(
    new TextDecoder().decode(new Uint8Array(buf, 8, n)),
  );
  const out = new Map<string, Float32Array | BigInt64Array>();
  for (
    const [name, info] of Object.entries(header) as [
      string,
      { dtype: string; data_offsets: number[] },
    ][]
  ) {
    if (name === "__metadata__") continue;
    const [a, z] = info.data_offsets;
    const raw = buf.slice(8 + n + a, 8 + n + z);
    if (info.dtype === "F32") out.set(name, new Float32Array(raw));
    else if (info.dtype === "I64") out.set(name, new BigInt64Array(raw));
    else throw new Error(`${name}: unsupported dtype ${info.dtype}`);
  }
  return out;
}

/** Weights accessor over a safetensors map that throws on missing or non-F32 names. */
function weights(map: Map<string, Float32Array | BigInt64Array>): Weights {
  return (name) => {
    const t = map.get(name);
    if (!(t instanceof Float32Array)) {
      throw new Error(`missing F32 tensor ${name}`);
    }
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
const ref = readSafetensors(dir + "reference.safetensors");
const refF32 = weights(ref);
const labels: number[] = refJson.tf.labels;
const idx = Int32Array.from(ref.get("tf.idx_BL") as BigInt64Array, Number); // [B, L]

Deno.test("teacherForcingInput64 matches idxBl_to_var_input", () => {
  const vae = weights(readSafetensors(dir + "vae.safetensors"));
  const x = teacherForcingInput64(vae, cfg, idx, labels.length); // [B, L - 1, Cvae]
  const diff = maxAbsDiff(x, refF32("tf.x_BLCv_wo_first_l"));
  assert.ok(diff <= 2e-5, `tf.x_BLCv_wo_first_l max |diff| ${diff}`);
});

Deno.test("varForward64 matches VAR.forward logits and the block-0 attention probe", () => {
  const vae = weights(readSafetensors(dir + "vae.safetensors"));
  const w = weights(readSafetensors(dir + "var.safetensors"));
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
