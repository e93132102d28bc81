/**
 * @file Hostile command lines the command-line fuzzer (tests/fuzz/cli_fuzz.ts) found, each pinned to the
 * behaviour it must have now: a one-line error naming the path, flag, tensor or entry at fault, exit 1
 * (2 only for a bug), before any work where the fault is in an output path.
 */
import assert from "node:assert/strict";
import { main, reportError } from "../cli/varc.ts";
import { compileCommand } from "../cli/compile.ts";
import { parseSafetensors, readSafetensors, SafetensorsError } from "../runtime/safetensors.ts";
import { nonFinite } from "../runtime/weights.ts";
import { relative } from "node:path";
import { ROOT } from "./fuzz/common.ts";

const GLYPHS = "examples/glyphs";
const SPEC = `${GLYPHS}/standard.var.ts`;
const VAR = `${GLYPHS}/var_standard.safetensors`;
const VAE = `${GLYPHS}/vae.safetensors`;
const TOKENS = "tests/fixtures/glyphs_standard/reference.safetensors";

/** Runs the CLI, capturing what it prints and which files it opens. */
async function run(...argv: string[]): Promise<{ code: number; out: string; err: string; opened: string[] }> {
  const out: string[] = [], err: string[] = [], opened: string[] = [];
  const [log, error, open] = [console.log, console.error, Deno.openSync];
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  Deno.openSync = (path: string | URL, options?: Deno.OpenOptions) => (opened.push(String(path)), open(path, options));
  try {
    const code = await main(argv);
    return { code, out: out.join("\n"), err: err.join("\n"), opened };
  } finally {
    [console.log, console.error, Deno.openSync] = [log, error, open];
  }
}

/** The one error line of a failed run (and that there is one, with no stack trace). */
function errorLine(r: { err: string }): string {
  const lines = r.err.split("\n").filter((l) => l.startsWith("error: ") || l.startsWith("internal error"));
  assert.equal(lines.length, 1, r.err);
  assert.doesNotMatch(r.err, /^\s+at .*:\d+:\d+\)?$/m, "printed a stack trace");
  return lines[0]!;
}

async function mkfifo(path: string): Promise<void> {
  const r = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.ok(r.success, "mkfifo");
}

async function sparse(path: string, size: number): Promise<void> {
  using f = await Deno.open(path, { create: true, write: true });
  await f.truncate(size);
}

const linux = Deno.build.os === "linux";

Deno.test({
  name: "a checkpoint or tokens file that is a FIFO is refused without opening it (opening waited for a writer)",
  ignore: !linux,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "varc_fifo_" });
    await mkfifo(`${dir}/tokens.safetensors`);
    await Deno.symlink(`${dir}/tokens.safetensors`, `${dir}/link.safetensors`);
    for (const path of [`${dir}/tokens.safetensors`, `${dir}/link.safetensors`]) {
      await assert.rejects(readSafetensors(path), (e: unknown) => {
        assert.ok(e instanceof SafetensorsError);
        assert.equal(e.message, `${path}: cannot read file: not a regular file (a directory, device, FIFO or socket)`);
        return true;
      });
    }
    const r = await run(
      ...["forward", SPEC, "--var", VAR, "--vae", VAE, "--labels", "3,17", "--tokens", `${dir}/link.safetensors`],
      ...["--out", `${dir}/out.safetensors`],
    );
    assert.equal(r.code, 1);
    assert.match(errorLine(r), /link\.safetensors: cannot read file: not a regular file/);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "a 1 TiB sparse checkpoint is a user error naming the file (was an internal RangeError)",
  ignore: !linux,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "varc_sparse_" });
    await sparse(`${dir}/var.safetensors`, 2 ** 40);
    const r = await run(
      "generate",
      SPEC,
      "--var",
      `${dir}/var.safetensors`,
      "--vae",
      VAE,
      "--labels",
      "3",
      "--out",
      dir,
    );
    assert.equal(r.code, 1);
    assert.equal(
      errorLine(r),
      `error: ${dir}/var.safetensors: cannot read file: its 1099511627776 bytes do not fit in memory`,
    );
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "bundle of a FIFO or 1 TiB spec is refused (esbuild read its watched files: it hung or died out of memory)",
  ignore: !linux,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "varc_bundle_" });
    await mkfifo(`${dir}/fifo.var.ts`);
    await sparse(`${dir}/huge.var.ts`, 2 ** 40);
    await Deno.writeTextFile(`${dir}/imports.var.ts`, `import m from "./fifo.var.ts";\nexport default m;\n`);
    for (
      const [spec, pattern] of [
        ["fifo.var.ts", /fifo\.var\.ts:1:1: error\[cannot-read\]: .*not a regular file/],
        ["huge.var.ts", /huge\.var\.ts:1:1: error\[spec-too-large\]: Spec .* is 1099511627776 bytes/],
        ["imports.var.ts", /imports\.var\.ts:1:\d+: error\[[a-z-]+\]: .*not a regular file/],
      ] as const
    ) {
      const r = await run("bundle", `${dir}/${spec}`, "--out", `${dir}/out`);
      assert.equal(r.code, 1, r.err);
      assert.match(r.err, pattern);
    }
    // The esbuild service still runs: a good spec bundles after them.
    assert.equal((await run("bundle", SPEC, "--out", `${dir}/out`)).code, 0);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("an output name taken by a folder or a FIFO is refused before any input is read (was after the run)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_final_" });
  await Deno.mkdir(`${dir}/g/image_0.png`, { recursive: true });
  await Deno.mkdir(`${dir}/c/report.md`, { recursive: true });
  await Deno.mkdir(`${dir}/b/model.d.ts`, { recursive: true });
  await Deno.mkdir(`${dir}/s/000000_c3.png`, { recursive: true });
  if (linux) await Deno.mkdir(`${dir}/f`), await mkfifo(`${dir}/f/outputs.safetensors`);
  const cases: [string[], RegExp, string[]][] = [
    [
      ["generate", SPEC, "--var", VAR, "--vae", VAE, "--labels", "3", "--out", `${dir}/g`],
      /^error: --out .*\/g\/image_0\.png: is a folder, expected a file name$/,
      [SPEC, VAR],
    ],
    [["compile", SPEC, "--out", `${dir}/c`], /^error: --out .*\/c\/report\.md: is a folder/, [SPEC]],
    [["bundle", SPEC, "--out", `${dir}/b`], /^error: --out .*\/b\/model\.d\.ts: is a folder/, [SPEC]],
    // sample names its images after the model's classes: it reads the spec, but no checkpoint
    [
      ["sample", SPEC, "--var", VAR, "--vae", VAE, "--per-class", "1", "--classes", "3", "--out", `${dir}/s`],
      /^error: --out .*\/s\/000000_c3\.png: is a folder/,
      [VAR, VAE],
    ],
    ...linux
      ? [[
        ["generate", SPEC, "--var", VAR, "--vae", VAE, "--labels", "3", "--out", `${dir}/f`],
        /^error: --out .*\/f\/outputs\.safetensors: exists and is not a regular file$/,
        [SPEC, VAR],
      ] as [string[], RegExp, string[]]]
      : [],
  ];
  for (const [argv, pattern, unread] of cases) {
    const r = await run(...argv);
    assert.equal(r.code, 1, argv.join(" "));
    assert.match(errorLine(r), pattern);
    for (const f of unread) assert.ok(!r.opened.some((o) => o.endsWith(f)), `${argv[0]} read ${f}`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("--out through a symlink to nothing is refused before the run (mkdir failed after it)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_dangling_" });
  await Deno.symlink(`${dir}/nowhere/x`, `${dir}/out`);
  const r = await run("generate", SPEC, "--var", VAR, "--vae", VAE, "--labels", "3", "--out", `${dir}/out`);
  assert.equal(r.code, 1);
  assert.equal(errorLine(r), `error: --out ${dir}/out: it is a symbolic link to a missing target`);
  assert.ok(!r.opened.some((o) => o.endsWith(SPEC)), "read the spec");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an output file in a folder that cannot be written is named as given (the message named its folder)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_ro_" });
  // As root a 0o555 folder stays writable; /sys/kernel refuses everyone.
  await Deno.mkdir(`${dir}/ro`), await Deno.chmod(`${dir}/ro`, 0o555);
  const ro = Deno.uid() === 0 ? "/sys/kernel" : `${dir}/ro`;
  if (linux || Deno.uid() !== 0) {
    const r = await run(
      ...[
        "decode",
        SPEC,
        "--vae",
        VAE,
        "--tokens",
        TOKENS,
        "--tokens-name",
        "tf.idx_BL",
        "--out",
        `${ro}/d.safetensors`,
      ],
    );
    assert.equal(r.code, 1);
    assert.match(errorLine(r), new RegExp(`^error: --out ${ro}/d\\.safetensors: cannot write in ${ro} \\(`));
  }
  await Deno.chmod(`${dir}/ro`, 0o755);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a line break in a path is escaped: the error stays one line (it forged a second one)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_newline_" });
  await Deno.writeTextFile(`${dir}/a\nerror: forged`, "x");
  const r = await run(
    ...["generate", SPEC, "--var", VAR, "--vae", VAE, "--labels", "3", "--out", `${dir}/a\nerror: forged/x`],
  );
  assert.equal(r.code, 1);
  assert.equal(r.err, `error: --out ${dir}/a\\u000aerror: forged/x: a part of the path is a file`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("varc pack writes into a folder it creates (the archive's temporary file had none)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_pack_" });
  const made = await run(
    ...["sample", SPEC, "--var", VAR, "--vae", VAE, "--per-class", "1", "--classes", "3", "--out", `${dir}/set`],
  );
  assert.equal(made.code, 0, made.err);
  const r = await run("pack", `${dir}/set`, "--out", `${dir}/a/b/set.npz`);
  assert.equal(r.code, 0, r.err);
  assert.equal((await Deno.stat(`${dir}/a/b/set.npz`)).isFile, true);
  await Deno.remove(dir, { recursive: true });
});

/** A copy of a checkpoint with `value` at element `at` of the F32 tensor `tensor`. */
async function planted(from: string, to: string, tensor: string, at: number, value: number): Promise<void> {
  const bytes = await Deno.readFile(from);
  const e = parseSafetensors(bytes, from).entries.get(tensor)!;
  new DataView(bytes.buffer, e.offset).setFloat32(4 * at, value, true);
  await Deno.writeFile(to, bytes);
}

Deno.test("a checkpoint holding ±Infinity or NaN is refused naming the tensor (an Infinity τ was clamped to a plausible image)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_inf_" });
  await planted(VAR, `${dir}/var.safetensors`, "blocks.0.attn.scale_mul_1H11", 1, Infinity);
  const gen = await run(
    ...["generate", SPEC, "--var", `${dir}/var.safetensors`, "--vae", VAE, "--labels", "3", "--out", `${dir}/g`],
  );
  assert.equal(gen.code, 1);
  assert.equal(
    errorLine(gen),
    `error: ${dir}/var.safetensors: tensor "blocks.0.attn.scale_mul_1H11" holds 1 non-finite value ` +
      "(first: Infinity at [0, 1, 0, 0]): the checkpoint is damaged",
  );
  assert.equal(await Deno.stat(`${dir}/g`).then(() => true, () => false), false, "nothing written");
  // The bound analysis reads weights too: it refused nothing and printed bounds from -Infinity.
  await planted(VAR, `${dir}/var2.safetensors`, "blocks.1.attn.mat_qkv.weight", 7, -Infinity);
  const explain = await run("explain", SPEC, "--var", `${dir}/var2.safetensors`);
  assert.equal(explain.code, 1);
  assert.match(
    errorLine(explain),
    /tensor "blocks\.1\.attn\.mat_qkv\.weight" holds 1 non-finite value \(first: -Infinity/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("nonFinite counts NaN and ±Infinity and names the first by index", () => {
  assert.equal(nonFinite(Float32Array.from([0, -0, 3.4e38, -1e-45]), [4]), undefined);
  assert.equal(
    nonFinite(Float32Array.from([1, 2, NaN, 4, -Infinity, 6]), [2, 3]),
    "holds 2 non-finite values (first: NaN at [0, 2]): the checkpoint is damaged",
  );
});

/** A spec made from the library's VAR pieces, with `entries` and `meta` as given. */
async function partial(dir: string, entries: string, meta = "...c, window: 6"): Promise<string> {
  const path = `${dir}/partial.var.ts`;
  const lib = relative(dir, `${ROOT}compiler/dsl`);
  await Deno.writeTextFile(
    path,
    `import { B, input, model, varConfig } from "${lib}/lang.ts";
import { fhatFromTokens, OPTIONAL_WEIGHTS } from "${lib}/lib/var.ts";
import { decoder, toUnit } from "${lib}/lib/vqvae.ts";
const c = varConfig({ name: "partial", depth: 4, width: 128, heads: 2, classes: 36, vocab: 512, cvae: 16,
  schedule: [1, 2, 3, 4, 6, 8], vaeCh: 32, vaeChMult: [1, 2, 2], vaeResBlocks: 1 });
const tokensToFhat = { fhat: fhatFromTokens(input("idx_BL", [B, c.tokens], "i32"), c) };
const img = toUnit(decoder(input("fhat", [B, c.cvae, 8, 8]), c));
export default model({ name: "partial", entries: { ${entries} }, meta: { ${meta} }, optionalWeights: OPTIONAL_WEIGHTS });
`,
  );
  return path;
}

Deno.test("a model whose entries or metadata do not fit the command is a one-line error naming what (was a bare JavaScript TypeError)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_partial_" });
  const decode = (spec: string) =>
    run(
      "decode",
      spec,
      "--vae",
      VAE,
      "--tokens",
      TOKENS,
      "--tokens-name",
      "tf.idx_BL",
      "--out",
      `${dir}/d.safetensors`,
    );
  const cases: [string, string | undefined, string][] = [
    [
      "tokens_to_fhat: tokensToFhat, decode: { image: img }",
      undefined,
      'decode needs a VAR model built with varModel: entry decode has no output "img" (its outputs: image)',
    ],
    [
      'tokens_to_fhat: tokensToFhat, decode: { img: input("fhat", [B, 3, 5, 5]) }',
      undefined,
      'decode needs a VAR model built with varModel: entry decode takes "fhat" as f32 [B, 3, 5, 5], expected f32 [B, 16, 8, 8]',
    ],
    [
      "tokens_to_fhat: tokensToFhat, decode: { img }",
      '...c, schedule: "1,2"',
      'decode needs a VAR model built with varModel: its metadata schedule is "1,2", expected increasing whole numbers',
    ],
    [
      "tokens_to_fhat: tokensToFhat, decode: { img }",
      "...c, vocab: 1",
      "decode needs a VAR model built with varModel: its metadata vocab is 1, but quantize.embedding.weight has 512 rows",
    ],
    [
      "tokens_to_fhat: tokensToFhat, decode: { img }",
      "...c, tokens: c.tokens + 1",
      "decode needs a VAR model built with varModel: its metadata tokens is 131, but the schedule [1,2,3,4,6,8] has 130 tokens",
    ],
  ];
  for (const [entries, meta, message] of cases) {
    const r = await decode(await partial(dir, entries, meta));
    assert.equal(r.code, 1, r.err);
    assert.equal(errorLine(r), `error: ${message}`);
  }
  const ok = await decode(await partial(dir, "tokens_to_fhat: tokensToFhat, decode: { img }"));
  assert.equal(ok.code, 0, ok.err);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a JavaScript TypeError from a bug is an internal error (exit 2), not a user error; an unknown pass is a user error", () => {
  const err: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const bug = new TypeError("Cannot read properties of undefined (reading 'outputs')");
    assert.equal(reportError(bug, "decode", compileCommand), 2);
    assert.match(err.at(-1)!, /^internal error in "varc decode": TypeError: Cannot read properties of undefined/);
    assert.equal(reportError(Object.create(null), "decode", compileCommand), 2);
    assert.match(err.at(-1)!, /^internal error in "varc decode": a thrown object without a string form\n/);
  } finally {
    console.error = error;
  }
});

Deno.test("--print-ir-after with an unknown pass is still a user error naming the passes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_pass_" });
  const r = await run("compile", SPEC, "--out", dir, "--print-ir-after", "nope");
  assert.equal(r.code, 1);
  assert.match(errorLine(r), /^error: print-ir-after: no pass named "nope"; the passes are infer-shapes, /);
  await Deno.remove(dir, { recursive: true });
});
