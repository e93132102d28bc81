/** @file Tests of binding checkpoint tensors to declared params, on in-memory safetensors files. */
import assert from "node:assert/strict";
import { parseSafetensors, type SafetensorsFile, type TensorToWrite, writeSafetensors } from "./safetensors.ts";
import { bindWeights, matchesPattern, MAX_PATTERN_LENGTH, type ParamSpec, WeightsError } from "./weights.ts";

const VAR_FILE = "mem/var.safetensors";
const VAE_FILE = "mem/vae.safetensors";

/** Deterministic F32 data of a shape (value k at flat index k, shifted by `base`). */
function f32(name: string, shape: number[], base = 0): TensorToWrite {
  const n = shape.reduce((p, d) => p * d, 1);
  return { name, dtype: "F32", shape, data: Float32Array.from({ length: n }, (_, k) => base + k * 0.5) };
}

function i64(name: string, shape: number[]): TensorToWrite {
  const n = shape.reduce((p, d) => p * d, 1);
  return { name, dtype: "I64", shape, data: BigInt64Array.from({ length: n }, (_, k) => BigInt(k)) };
}

function file(name: string, tensors: TensorToWrite[]): SafetensorsFile {
  return parseSafetensors(writeSafetensors(tensors), name);
}

/** Asserts that `fn` throws a WeightsError whose message contains every part. */
function assertWeightsError(fn: () => unknown, ...parts: string[]): string {
  let message = "";
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof WeightsError, `not a WeightsError: ${err}`);
    assert.equal(err.name, "WeightsError");
    for (const p of parts) assert.ok(err.message.includes(p), `"${p}" missing in: ${err.message}`);
    message = err.message;
    return true;
  });
  return message;
}

const PARAMS: ParamSpec[] = [
  { name: "class_emb.weight", shape: [11, 4], source: "var" },
  { name: "pos_start", shape: [1, 1, 4], source: "var" },
  { name: "blocks.0.attn.proj.weight", shape: [4, 4], source: "var" },
  { name: "head.bias", shape: [], source: "var" },
  { name: "quantize.embedding.weight", shape: [8, 3], source: "vae" },
];

const OPTIONAL = ["attn_bias_for_masking", "blocks.*.attn.zero_k_bias", "encoder.*", "decoder.*"];

function goodVar(): TensorToWrite[] {
  return [
    f32("class_emb.weight", [11, 4], 1),
    f32("pos_start", [1, 1, 4], 2),
    f32("blocks.0.attn.proj.weight", [4, 4], 3),
    f32("head.bias", [], 4),
  ];
}

function goodVae(): TensorToWrite[] {
  return [f32("quantize.embedding.weight", [8, 3], 5)];
}

Deno.test("bindWeights: all tensors present and well-formed -> lookup returns their data", () => {
  const vars = goodVar(), vaes = goodVae();
  const lookup = bindWeights(PARAMS, { var: file(VAR_FILE, vars), vae: file(VAE_FILE, vaes) }, OPTIONAL);
  for (const t of [...vars, ...vaes]) {
    const got = lookup(t.name);
    assert.ok(got instanceof Float32Array, t.name);
    assert.deepEqual(Array.from(got), Array.from(t.data as Float32Array), t.name);
  }
  assert.deepEqual(Array.from(lookup("head.bias")), [4]);
  assertWeightsError(() => lookup("not.declared"), "not.declared");
});

Deno.test("bindWeights: a missing tensor is named with its expected shape and the file", () => {
  const vars = goodVar().filter((t) => t.name !== "blocks.0.attn.proj.weight");
  const msg = assertWeightsError(
    () => bindWeights(PARAMS, { var: file(VAR_FILE, vars), vae: file(VAE_FILE, goodVae()) }, OPTIONAL),
    VAR_FILE,
    `"blocks.0.attn.proj.weight"`,
    "[4, 4]",
    "missing",
  );
  assert.ok(!msg.includes("class_emb.weight"), msg);
});

Deno.test("bindWeights: a mis-shaped tensor names the expected and found shapes", () => {
  const vars = goodVar().map((t) => (t.name === "class_emb.weight" ? f32("class_emb.weight", [4, 11]) : t));
  assertWeightsError(
    () => bindWeights(PARAMS, { var: file(VAR_FILE, vars), vae: file(VAE_FILE, goodVae()) }, OPTIONAL),
    VAR_FILE,
    `"class_emb.weight"`,
    "[4, 11]",
    "[11, 4]",
  );
  // Same element count, different rank.
  const flat = goodVar().map((t) => (t.name === "pos_start" ? f32("pos_start", [4]) : t));
  assertWeightsError(
    () => bindWeights(PARAMS, { var: file(VAR_FILE, flat), vae: file(VAE_FILE, goodVae()) }, OPTIONAL),
    `"pos_start"`,
    "[4]",
    "[1, 1, 4]",
  );
});

Deno.test("bindWeights: a tensor of the wrong dtype (I64) names the dtype", () => {
  const vars = goodVar().map((t) => (t.name === "pos_start" ? i64("pos_start", [1, 1, 4]) : t));
  assertWeightsError(
    () => bindWeights(PARAMS, { var: file(VAR_FILE, vars), vae: file(VAE_FILE, goodVae()) }, OPTIONAL),
    VAR_FILE,
    `"pos_start"`,
    "I64",
    "F32",
  );
});

Deno.test("bindWeights: an unexpected extra tensor is named", () => {
  const vars = [...goodVar(), f32("blocks.0.attn.zero_v_bias", [4])];
  const msg = assertWeightsError(
    () => bindWeights(PARAMS, { var: file(VAR_FILE, vars), vae: file(VAE_FILE, goodVae()) }, OPTIONAL),
    VAR_FILE,
    `"blocks.0.attn.zero_v_bias"`,
    "unexpected",
  );
  assert.ok(!msg.includes("missing"), msg);
});

Deno.test("bindWeights: extra tensors matching optional patterns are accepted", () => {
  const vars = [
    ...goodVar(),
    f32("blocks.0.attn.zero_k_bias", [4]),
    f32("blocks.11.attn.zero_k_bias", [4]),
    f32("attn_bias_for_masking", [1, 1, 5, 5]),
  ];
  const vaes = [...goodVae(), f32("encoder.conv_in.weight", [2, 3, 3, 3]), f32("decoder.mid.block_1.norm1.bias", [2])];
  const lookup = bindWeights(PARAMS, { var: file(VAR_FILE, vars), vae: file(VAE_FILE, vaes) }, OPTIONAL);
  assert.equal(lookup("pos_start").length, 4);
  // Without the patterns the same files are rejected, naming the extras.
  assertWeightsError(
    () => bindWeights(PARAMS, { var: file(VAR_FILE, vars), vae: file(VAE_FILE, vaes) }, []),
    `"blocks.0.attn.zero_k_bias"`,
    `"encoder.conv_in.weight"`,
    VAE_FILE,
  );
});

Deno.test("bindWeights: several problems are all reported in one error", () => {
  const vars = [
    f32("class_emb.weight", [10, 4]), // mis-shaped
    i64("pos_start", [1, 1, 4]), // wrong dtype
    // "blocks.0.attn.proj.weight" and "head.bias" missing
    f32("stray.tensor", [3]), // unexpected
  ];
  const vaes = [f32("quantize.embedding.weight", [8, 3]), f32("post_quant_conv.weight", [1])]; // unexpected
  const msg = assertWeightsError(
    () => bindWeights(PARAMS, { var: file(VAR_FILE, vars), vae: file(VAE_FILE, vaes) }, OPTIONAL),
    `"class_emb.weight"`,
    "[10, 4]",
    `"pos_start"`,
    "I64",
    `"blocks.0.attn.proj.weight"`,
    `"head.bias"`,
    `"stray.tensor"`,
    `"post_quant_conv.weight"`,
    VAR_FILE,
    VAE_FILE,
  );
  assert.ok(msg.split("\n").length >= 5, msg);
});

Deno.test("bindWeights: many missing tensors are listed with a count of the rest", () => {
  const params: ParamSpec[] = Array.from({ length: 7 }, (_, i) => ({ name: `t${i}`, shape: [i + 1], source: "var" }));
  assertWeightsError(() => bindWeights(params, { var: file(VAR_FILE, []) }, []), `"t0"`, "[1]", `"t3"`, "3 more");
});

Deno.test("bindWeights: a param from a checkpoint that was not given mentions its option", () => {
  assertWeightsError(
    () => bindWeights(PARAMS, { var: file(VAR_FILE, goodVar()) }, OPTIONAL),
    `"quantize.embedding.weight"`,
    "--vae",
  );
  const vaeOnly = PARAMS.filter((p) => p.source === "vae");
  assert.doesNotThrow(() => bindWeights(vaeOnly, { vae: file(VAE_FILE, goodVae()) }, OPTIONAL));
  assertWeightsError(() => bindWeights(PARAMS, { vae: file(VAE_FILE, goodVae()) }, OPTIONAL), `"pos_start"`, "--var");
});

Deno.test("matchesPattern: exact names, anchoring, literal dots, * within a segment and at the end", () => {
  const cases: [string, string, boolean][] = [
    ["lvl_1L", "lvl_1L", true],
    ["lvl_1Lx", "lvl_1L", false],
    ["xlvl_1L", "lvl_1L", false],
    ["encoder.conv_in.weight", "encoder.*", true],
    ["encoder.down.0.block.1.norm1.bias", "encoder.*", true],
    ["encoder", "encoder.*", false],
    ["encoderXconv", "encoder.*", false],
    ["decoder.conv_in.weight", "encoder.*", false],
    ["post_quant_conv.weight", "quant_conv.*", false],
    ["quant_conv.weight", "quant_conv.*", true],
    ["blocks.0.attn.zero_k_bias", "blocks.*.attn.zero_k_bias", true],
    ["blocks.15.attn.zero_k_bias", "blocks.*.attn.zero_k_bias", true],
    ["blocks.0.attn.zero_v_bias", "blocks.*.attn.zero_k_bias", false],
    ["blocks.0.attn.zero_k_bias.x", "blocks.*.attn.zero_k_bias", false],
    ["head.blocks.0.attn.zero_k_bias", "blocks.*.attn.zero_k_bias", false],
    ["blocks.0xattnxzero_k_bias", "blocks.*.attn.zero_k_bias", false],
    ["a+b", "a+b", true],
    ["aab", "a+b", false],
    ["w(1)", "w(1)", true],
    ["w1", "w(1)", false],
  ];
  for (const [name, pattern, want] of cases) assert.equal(matchesPattern(name, pattern), want, `${name} ~ ${pattern}`);
});

Deno.test({
  name: "matchesPattern: * in the middle does not cross a dot",
  fn() {
    assert.equal(matchesPattern("blocks.0.1.attn.zero_k_bias", "blocks.*.attn.zero_k_bias"), false);
    assert.equal(matchesPattern("blocks.0.extra.attn.zero_k_bias", "blocks.*.attn.zero_k_bias"), false);
  },
});

Deno.test({
  name: "matchesPattern: a trailing * matches any characters",
  fn() {
    assert.equal(matchesPattern("encoder.conv-in/weight", "encoder.*"), true);
    assert.equal(matchesPattern("decoder.up[0].weight", "decoder.*"), true);
  },
});

/** The pattern semantics as a regular expression (the reference: fine for the short inputs here). */
function regexMatch(name: string, pattern: string): boolean {
  const escape = (p: string) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  const parts = pattern.split("*").map(escape);
  const last = parts.pop()!;
  const re = parts.map((p) => p + "[^.]*").join("") + last;
  const tail = pattern.endsWith("*") ? re.slice(0, -"[^.]*".length) + ".*" : re;
  return new RegExp(`^${tail}$`).test(name);
}

Deno.test("weight-name patterns match as the regular-expression reference on random names and patterns", () => {
  let seed = 12345;
  const pick = (s: string) => s[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % s.length]!;
  const word = (alphabet: string, n: number) => Array.from({ length: n }, () => pick(alphabet)).join("");
  let agree = 0;
  for (let t = 0; t < 20000; t++) {
    const name = word("ab.", 1 + (t % 9));
    const pattern = word("ab.**", 1 + ((t >> 3) % 7));
    assert.equal(matchesPattern(name, pattern), regexMatch(name, pattern), `${name} vs ${pattern}`);
    agree++;
  }
  assert.equal(agree, 20000);
  assert.ok(matchesPattern("encoder.down.0.block.1.conv1.weight", "encoder.*"));
  assert.ok(matchesPattern("blocks.12.attn.zero_k_bias", "blocks.*.attn.zero_k_bias"));
  assert.ok(!matchesPattern("blocks.1.2.attn.zero_k_bias", "blocks.*.attn.zero_k_bias"));
});

Deno.test("a pattern of many stars against a long name takes microseconds, not minutes", () => {
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) assert.ok(!matchesPattern("a".repeat(200) + "b", "*a".repeat(100) + "c"));
  assert.ok(performance.now() - t0 < 2000, `${(performance.now() - t0).toFixed(0)} ms`); // regex: minutes
  assert.ok(!matchesPattern("x", "*".repeat(MAX_PATTERN_LENGTH + 1)), "over-long patterns match nothing");
});
