/** @file The CLI in-process: exit codes, printed summaries, written files, errors without stack traces. */
import assert from "node:assert/strict";
import { reportError } from "../cli/varc.ts";
import { runCli } from "./_samples.ts";
import { compileCommand } from "../cli/compile.ts";
import { decode } from "fast-png";
import { compile } from "../compiler/mod.ts";
import { importModel } from "../runtime/mod.ts";
import { randomModel } from "../runtime/random.ts";
import { readSafetensors, writeSafetensors } from "../runtime/safetensors.ts";
import { assertClose, FIXTURE, maxAbs } from "./_helpers.ts";

/** Runs the CLI, capturing what it prints. */
/** The CLI in this process, capturing what it prints. */
const run = runCli;

function noStackTrace(text: string): void {
  assert.doesNotMatch(text, /^\s+at .*:\d+:\d+\)?$/m, "printed a stack trace");
}

Deno.test("varc --help and every command's --help exit 0, each command's options aligned in one column", async () => {
  assert.equal((await run("--help")).code, 0);
  for (const cmd of ["compile", "bundle", "explain", "forward", "generate", "sample", "pack", "decode"]) {
    const r = await run(cmd, "--help");
    assert.equal(r.code, 0);
    assert.match(r.out, new RegExp(`Usage: varc ${cmd}`));
    // "  --flag ARG   description": every description of the command starts in the same column
    const columns = r.out.split("\n").filter((l) => /^ {2}-/.test(l)).map((l) =>
      /^ {2}-\S*(?:, --\S+)?(?: \S+)? +/.exec(l)![0].length
    );
    assert.equal(new Set(columns).size, 1, `${cmd}: option descriptions start in columns ${[...new Set(columns)]}`);
  }
});

Deno.test("varc compile writes the module and report and prints the parameter count", async () => {
  const dir = await Deno.makeTempDir();
  const r = await run("compile", "examples/var_d16.var.ts", "--out", dir);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /parameters: 310,283,520 \(VAR/);
  for (const f of ["model.js", "model.d.ts", "model.src.ts", "report.json", "report.md"]) {
    assert.ok((await Deno.stat(`${dir}/${f}`)).size > 0, f);
  }
  const report = JSON.parse(await Deno.readTextFile(`${dir}/report.json`));
  assert.equal(report.parameters.var, 310_283_520);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("varc forward reproduces the fixture's teacher-forced logits", async () => {
  const dir = await Deno.makeTempDir();
  const out = `${dir}/OUT.safetensors`;
  const r = await run(
    "forward",
    "examples/var_tiny_a.var.ts",
    ...["--var", `${FIXTURE}var.safetensors`, "--vae", `${FIXTURE}vae.safetensors`, "--labels", "3,7"],
    ...["--tokens", `${FIXTURE}reference.safetensors`, "--tokens-name", "tf.idx_BL", "--out", out],
  );
  assert.equal(r.code, 0, r.err);
  const [got, ref] = [await readSafetensors(out), await readSafetensors(`${FIXTURE}reference.safetensors`)];
  assert.deepEqual(got.entries.get("logits_BLV")!.shape, [2, 680, 256]);
  assertClose("logits_BLV", got.f32("logits_BLV"), ref.f32("tf.logits_BLV"), 1e-5);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CLI errors exit 1 with a message naming the flag, file or span, never a stack trace", async () => {
  const fx = (f: string) => `${FIXTURE}${f}`;
  const base = [
    "forward",
    "examples/var_tiny_a.var.ts",
    "--var",
    fx("var.safetensors"),
    "--vae",
    fx("vae.safetensors"),
  ];
  const gen = ["generate", "examples/var_tiny_a.var.ts", "--var", "v", "--vae", "v", "--labels", "1", "--out", "x"];
  const cases: [string[], RegExp][] = [
    [["nope"], /unknown command "nope"/],
    [["generat"], /unknown command "generat" \(did you mean "generate"\?\)/],
    [["generate", "x", "--lables", "3"], /Unknown option '--lables' \(did you mean --labels\?\)/],
    [["compile"], /missing <spec.var.ts>/],
    [["compile", "examples/var_tiny_a.var.ts"], /missing --out/],
    [["compile", "examples/var_tiny_a.var.ts", "--out", "x", "--bogus"], /Unknown option '--bogus'/],
    [
      ["compile", "examples/var_tiny_a.var.ts", "--out", "x", "--target", "metal"],
      /--target must be "js", "webgpu" or "auto"/,
    ],
    [["compile", "tests/specs/does_not_exist.var.ts", "--out", "x"], /Cannot read spec .*does_not_exist/],
    [
      [...base, "--labels", "3,10", "--tokens", fx("reference.safetensors"), "--out", "x"],
      /--labels: "10" is not a class index in \[0, 10\)/,
    ],
    [[...base, "--labels", "3,7", "--tokens", fx("reference.safetensors"), "--out", "x"], /has no tensor "idx_BL"/],
    // Labels are decimal integers only; flags are given once; values are range-checked, negative ones too.
    ...["0x3", "3e0", "+3", "3.0", "-1"].map((l): [string[], RegExp] => [
      [...base, "--labels", l, "--tokens", fx("reference.safetensors"), "--out", "x"],
      new RegExp(`--labels: "${l.replace(/[.+]/g, "\\$&")}" is not a class index`),
    ]),
    // A spec that is not a VAR model: each command names what it needs.
    ...[
      ["generate", "--var", "v", "--vae", "v", "--labels", "1", "--out", "x"],
      ["decode", "--vae", "v", "--tokens", "t", "--out", "x"],
      ["forward", "--var", "v", "--vae", "v", "--labels", "1", "--tokens", "t", "--out", "x"],
    ].map(([cmd, ...flags]): [string[], RegExp] => [
      [cmd!, "tests/specs/overflow.var.ts", ...flags],
      new RegExp(`^error: ${cmd} needs a VAR model built with varModel: its metadata has no schedule`),
    ]),
    [["compile", "examples/var_tiny_a.var.ts", "--out", "x", "--out", "y"], /--out is given twice \("x" and "y"\)/],
    [[...gen, "--top-k", "-1"], /--top-k must be an integer in \[0, 256\]/],
    [[...gen, "--cfg", "1e308"], /--cfg must be in \[0, 10000\], got 1e\+308/],
    [
      ["compile", "examples/var_tiny_a.var.ts", "--out", "x", "--print-ir-after", "infer-shapes,nope"],
      /no pass named "nope"; the passes are infer-shapes, /,
    ],
    [
      [...base, "--labels", "3", "--tokens", fx("reference.safetensors"), "--tokens-name", "tf.idx_BL", "--out", "x"],
      /shape \[2, 680\], expected \[1, 680\]/,
    ],
    [[
      "forward",
      "examples/var_tiny_a.var.ts",
      "--var",
      fx("vae.safetensors"),
      "--vae",
      fx("var.safetensors"),
      "--labels",
      "3,7",
      "--tokens",
      fx("reference.safetensors"),
      "--tokens-name",
      "tf.idx_BL",
      "--out",
      "x",
    ], /missing 9 tensors "quantize\.embedding\.weight" \(F32 \[256, 8\]\)/],
    [[
      "forward",
      "examples/var_tiny_a.var.ts",
      "--var",
      "missing.safetensors",
      "--vae",
      fx("vae.safetensors"),
      "--labels",
      "3,7",
      "--tokens",
      fx("reference.safetensors"),
      "--tokens-name",
      "tf.idx_BL",
      "--out",
      "x",
    ], /missing\.safetensors/],
  ];
  for (const [argv, pattern] of cases) {
    const r = await run(...argv);
    assert.equal(r.code, 1, argv.join(" "));
    assert.match(r.err, pattern, argv.join(" "));
    noStackTrace(r.err);
  }
});

Deno.test("a malformed spec prints file:line:col, the line, a caret and a hint, and exits 1", async () => {
  const dir = await Deno.makeTempDir();
  const spec = `${Deno.cwd()}/tests/specs/_bad_heads.var.ts`;
  await Deno.writeTextFile(
    spec,
    `import { varModel } from "../../compiler/dsl/lib/var.ts";\nexport default varModel({ name: "x", depth: 1, width: 100,\n  heads: 3, schedule: [1, 2] });\n`,
  );
  try {
    const r = await run("compile", spec, "--out", dir);
    assert.equal(r.code, 1);
    assert.match(r.err, /_bad_heads\.var\.ts:3:3: error\[not-divisible\]: Cannot split width 100 into 3 heads/);
    assert.match(r.err, /^ {2}3 \| {3}heads: 3, schedule/m);
    assert.match(r.err, /^ {4}\| {3}\^{8}/m);
    assert.match(r.err, /note: Pick heads among the divisors of 100/);
    noStackTrace(r.err);
  } finally {
    await Deno.remove(spec);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--print-ir-after prints the IR after the named pass; --list-passes lists the pipeline", async () => {
  const dir = await Deno.makeTempDir();
  const r = await run("compile", "tests/specs/tiny_golden.var.ts", "--out", dir, "--print-ir-after", "infer-shapes");
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /\/\/ IR after infer-shapes\nmodule "tiny_golden" \{/);
  const l = await run("compile", "--list-passes");
  assert.match(
    l.out,
    /^infer-shapes .*\nmerge-params .*\nnorm-bounds .*\nlower-attention .*\nfuse-modulation .*\nfuse-residual .*\nfuse-heads .*\nfuse-activations .*\neliminate-dead-code /m,
  );
  await Deno.remove(dir, { recursive: true });
});

/** Writes seeded random checkpoints for a spec into `dir`; returns their paths. */
async function randomCheckpoints(spec: string, dir: string): Promise<{ var: string; vae: string }> {
  const module = await importModel((await compile(spec)).emitted.bundle);
  const { files } = randomModel(module, 21);
  const paths = { var: `${dir}/var.safetensors`, vae: `${dir}/vae.safetensors` };
  await Deno.writeFile(paths.var, files.var.bytes);
  await Deno.writeFile(paths.vae, files.vae.bytes);
  return paths;
}

Deno.test("varc generate writes PNGs and outputs.safetensors; varc decode reproduces its f_hat and image", async () => {
  const dir = await Deno.makeTempDir();
  const spec = "tests/specs/markov.var.ts";
  const w = await randomCheckpoints(spec, dir);
  const g = await run("generate", spec, "--var", w.var, "--vae", w.vae, "--labels", "0,2", "--seed", "4", "--out", dir);
  assert.equal(g.code, 0, g.err);
  assert.match(g.out, /time: compile .* decode/);
  assert.match(g.err, /scale 4\/4 \(4x4\)/); // plain progress lines when stderr is not a terminal
  const png = decode(await Deno.readFile(`${dir}/image_1.png`));
  assert.deepEqual([png.width, png.height, png.channels], [8, 8, 3]);
  const out = await readSafetensors(`${dir}/outputs.safetensors`);
  assert.deepEqual(out.entries.get("idx_BL")!.shape, [2, 30]);
  assert.deepEqual(out.entries.get("tokens_3")!.shape, [2, 4, 4]);
  assert.deepEqual([...out.i32("tokens_1").subarray(0, 4)], [...out.i32("idx_BL").subarray(1, 5)]);
  assert.deepEqual(out.entries.get("img")!.shape, [2, 3, 8, 8]);

  const d = await run(
    "decode",
    spec,
    "--vae",
    w.vae,
    "--tokens",
    `${dir}/outputs.safetensors`,
    "--out",
    `${dir}/dec.safetensors`,
  );
  assert.equal(d.code, 0, d.err);
  const dec = await readSafetensors(`${dir}/dec.safetensors`);
  // decode re-sums f̂ from the tokens in another order than generation's running sum: float32 rounding only.
  assertClose("decode f_hat", dec.f32("f_hat"), out.f32("f_hat"), 1e-5 * Math.max(1, maxAbs(out.f32("f_hat"))));
  assertClose("decode img", dec.f32("img"), out.f32("img"), 1e-4);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("varc generate rejects out-of-range settings before any work, naming the flag", async () => {
  const fx = (f: string) => `${FIXTURE}${f}`;
  const base = [
    "generate",
    "examples/var_tiny_a.var.ts",
    "--var",
    fx("var.safetensors"),
    "--vae",
    fx("vae.safetensors"),
    "--out",
    "x",
  ];
  const cases: [string[], RegExp][] = [
    [["--labels", "3,12"], /--labels: "12" is not a class index in \[0, 10\)/],
    [["--labels", "3,-1"], /--labels: "-1" is not a class index/],
    [["--labels", "3", "--cfg=-1"], /--cfg must be in \[0, 10000\], got -1/],
    [["--labels", "3", "--cfg", "abc"], /--cfg must be a number, got "abc"/],
    [["--labels", "3", "--top-k=-5"], /--top-k must be an integer in \[0, 256\]/],
    [["--labels", "3", "--top-k", "900"], /--top-k must be an integer in \[0, 256\]/],
    [["--labels", "3", "--top-k", "2.5"], /--top-k must be an integer/],
    [["--labels", "3", "--top-p", "1.5"], /--top-p must be in \[0, 1\]/],
    [["--labels", "3", "--seed", "0.5"], /--seed must be an integer/],
    [
      ["--labels", "3", "--vae", fx("var.safetensors")],
      /missing 2\d\d tensors "post_quant_conv.weight"|missing \d+ tensors/,
    ],
  ];
  for (const [extra, pattern] of cases) {
    const r = await run(...(extra.includes("--vae") ? base.filter((_, i) => i !== 4 && i !== 5) : base), ...extra);
    assert.equal(r.code, 1, extra.join(" "));
    assert.match(r.err, pattern, extra.join(" "));
    noStackTrace(r.err);
  }
});

Deno.test("a VQ-VAE weight that overflows float32 in the last convolution: generate and decode fail naming the output, and write nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_nan_" });
  const vae = await readSafetensors(`${FIXTURE}vae.safetensors`);
  const tensors = [...vae.entries.keys()].filter((n) => vae.entries.get(n)!.dtype === "F32").map((name) => {
    const data = vae.f32(name).slice();
    // finite, so the checkpoint is accepted (NaN and ±Inf in a checkpoint are refused when it is read); the
    // convolution's sums overflow to ±Inf, and what follows turns them into NaN or keeps them infinite
    if (name === "decoder.conv_out.weight") data.fill(3e38, 0, 64);
    return { name, dtype: "F32" as const, shape: vae.entries.get(name)!.shape, data };
  });
  const nanVae = `${dir}/vae_nan.safetensors`;
  await Deno.writeFile(nanVae, writeSafetensors(tensors));
  const spec = "examples/var_tiny_a.var.ts";
  const gen = await run(
    ...["generate", spec, "--var", `${FIXTURE}var.safetensors`, "--vae", nanVae, "--labels", "3", "--out", `${dir}/g`],
  );
  assert.equal(gen.code, 1);
  assert.match(gen.err, /output "f_hat"|output "img" has \d+ non-finite values .* run with --check-numerics/);
  noStackTrace(gen.err);
  assert.equal(await Deno.stat(`${dir}/g/image_0.png`).then(() => true, () => false), false, "no PNG was written");
  const dec = await run(
    ...["decode", spec, "--vae", nanVae, "--tokens", `${FIXTURE}reference.safetensors`, "--tokens-name", "dec.idx_BL"],
    ...["--out", `${dir}/d.safetensors`],
  );
  assert.equal(dec.code, 1);
  assert.match(
    dec.err,
    /output "img" has \d+ non-finite values of 393216 \(first: (NaN|-?Infinity) at \[0, [0-2], \d+, \d+\]\)/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("output paths are checked before any work and reported in one line naming the path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_out_" });
  await Deno.writeTextFile(`${dir}/file`, "x");
  const gen = (out: string) =>
    run("generate", "examples/var_tiny_a.var.ts", "--var", "none", "--vae", "none", "--labels", "3", "--out", out);
  const cases: [() => Promise<{ code: number; err: string }>, RegExp][] = [
    [() => gen(`${dir}/file`), /--out .*\/file: exists and is not a folder/],
    [() => gen(`${dir}/file/sub`), /--out .*\/file\/sub: a part of the path is a file/],
    [
      () => run("compile", "examples/var_tiny_a.var.ts", "--out", `${dir}/file`),
      /--out .*\/file: exists and is not a folder/,
    ],
    [
      () => run("decode", "examples/var_tiny_a.var.ts", "--vae", "none", "--tokens", "none", "--out", dir),
      /--out .*: is a folder, expected a file name/,
    ],
  ];
  for (const [p, pattern] of cases) {
    const r = await p(); // one at a time: run() captures the console
    assert.equal(r.code, 1);
    assert.match(r.err, pattern); // before reading "none": the checkpoints were never opened
    assert.equal(r.err.split("\n")[0]!.length < 200, true, r.err);
    noStackTrace(r.err);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "a write that hits the file-size limit fails naming the file and leaves no partial file under its name",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "varc_ulimit_" });
    const deno = Deno.execPath();
    await new Deno.Command(deno, { args: ["cache", "cli/varc.ts"] }).output(); // a size limit must not hit the cache
    // A full disk fails the write with ENOSPC; a size limit with SIGXFSZ ignored fails it the same way (EFBIG). With the
    // signal at its default the kernel kills the process instead, which no program can report.
    const cmd = `trap '' XFSZ; ulimit -f 100; exec "${deno}" run -A cli/varc.ts generate examples/var_tiny_a.var.ts ` +
      `--var ${FIXTURE}var.safetensors --vae ${FIXTURE}vae.safetensors --labels 3,7 --out ${dir}`;
    const r = await new Deno.Command("bash", { args: ["-c", cmd], stdout: "piped", stderr: "piped" }).output();
    const err = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, 1, err);
    assert.match(err, /error: writing .*\/image_0\.png failed: File too large \(\d+ bytes\)/);
    const left = [];
    for await (const e of Deno.readDir(dir)) left.push(e.name);
    assert.deepEqual(left, [], "no PNG, no temporary file");
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("text from files reaches the terminal escaped and cut: no ANSI escapes, forged lines or 5 MB lines", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_text_" });
  const header = (name: string) => {
    const json = JSON.stringify({ [name]: { dtype: "F32", shape: [1], data_offsets: [0, 4] } });
    const h = new TextEncoder().encode(json + " ".repeat((8 - (json.length % 8)) % 8));
    const out = new Uint8Array(8 + h.length + 4);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    return out;
  };
  const spec = `${dir}/evil.var.ts`;
  await Deno.writeTextFile(spec, `export default 1; // \u001b[2J\u001b[31m${"x".repeat(5_000)}\n`);
  for (
    const [name, pattern] of [
      ["\u001b[2Jcleared\nerror: forged line", /tensor name "\\u001b\[2Jcleared\\nerror: forged line"/],
      ["n".repeat(5 << 20), /\(5242880 characters\): expected at most 1024 printable characters/],
    ] as const
  ) {
    await Deno.writeFile(`${dir}/var.safetensors`, header(name));
    const r = await run(
      "generate",
      "examples/var_tiny_a.var.ts",
      ...["--var", `${dir}/var.safetensors`, "--vae", `${FIXTURE}vae.safetensors`, "--labels", "1", "--out", dir],
    );
    assert.equal(r.code, 1);
    assert.match(r.err, pattern);
    // deno-lint-ignore no-control-regex -- matching control characters is the point
    assert.doesNotMatch(r.err, /[\u0000-\u0008\u000b-\u001f]/, "a raw control character reached the terminal");
    assert.ok(r.err.split("\n").every((l) => l.length < 600), "a line longer than the cap");
    assert.equal(r.err.split("\n").filter((l) => l.startsWith("error:")).length, 1, "one error line");
  }
  const bad = await run("compile", spec, "--out", `${dir}/o`);
  assert.equal(bad.code, 1);
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  assert.doesNotMatch(bad.err, /\u001b/);
  assert.match(bad.err, /\\u001b\[2J\\u001b\[31mx+… \(\d+ characters\)/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an unexpected exception is an internal error in one line, not a stack trace", () => {
  const err: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = reportError(new RangeError("simulated bug\n    at somewhere (x.ts:1:2)"), "compile", compileCommand);
    assert.equal(code, 2);
  } finally {
    console.error = error;
  }
  assert.match(err.join("\n"), /^internal error in "varc compile": RangeError: simulated bug\nThis is a bug in varc/);
  noStackTrace(err.join("\n"));
});

Deno.test("success lines escape control characters of the paths they print (an --out name cannot recolour or forge lines)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_print_" });
  const out = `${dir}/a\u001b[31mred\rb`;
  const r = await run("compile", "examples/var_tiny_a.var.ts", "--out", out);
  assert.equal(r.code, 0, r.err);
  // deno-lint-ignore no-control-regex -- the test looks for raw control characters
  assert.doesNotMatch(r.out, /[\u0000-\u0008\u000b-\u001f\u007f]/);
  assert.match(r.out, /wrote .*a\\u001b\[31mred\\u000db\/model\.js/);
  await Deno.remove(dir, { recursive: true });
});
