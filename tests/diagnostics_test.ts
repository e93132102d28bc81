/**
 * Diagnostics of malformed specs: every file under `tests/diagnostics/` marks the errors it must
 * produce with a comment on the line above the offending line,
 *
 *     // expect-error <col> <id>: <substring of the message>
 *
 * (or `// expect-error <line>:<col> <id>: …` anywhere, for a span on a line that has no line
 * above it). The compiler must report exactly those errors: same line, column and id, no more,
 * no fewer, each message containing its substring; and it must render them without stack traces.
 */
import assert from "node:assert/strict";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "../cli/varc.ts";
import type { Diagnostic } from "../compiler/diagnostics.ts";
import { LIMITS } from "../compiler/dsl/interp.ts";
import { LANG_PATH } from "../compiler/dsl/mod.ts";
import { CompileError, formatDiagnostics, lower } from "../compiler/mod.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DIR = join(ROOT, "tests", "diagnostics");
/** Spec files; `.var.ts.txt` holds specs with syntax errors, which deno fmt/lint/check must not see. */
const SPEC_FILE = /\.var\.ts(\.txt)?$/;
const ANNOTATION = /^\s*\/\/ expect-error (?:(\d+):)?(\d+) ([a-z][a-z0-9-]*): (.+)$/;

/**
 * Specs the compiler gets wrong today. Each test asserts the correct behaviour and is skipped
 * until the compiler is fixed; the reason says what happens instead. Run them anyway with
 * `VARC_KNOWN_BUGS=1 deno test -A tests/diagnostics_test.ts`.
 */
const RUN_KNOWN_BUGS = Deno.env.get("VARC_KNOWN_BUGS") === "1";
const KNOWN_BUGS: Readonly<Record<string, string>> = {};

/** Specs whose errors must carry a note pointing at another file (the library that called the spec's code). */
const NOTE_FROM: Readonly<Record<string, string>> = {
  "custom_ffn_bad_argument.var.ts": "compiler/dsl/lib/var.ts",
  "custom_ffn_wrong_shape.var.ts": "compiler/dsl/lib/var.ts",
};

/** Evaluation limits lowered while one spec compiles, so that hitting them stays fast. */
const LIMITS_FOR: Readonly<Record<string, Partial<typeof LIMITS>>> = {
  "eval_budget.var.ts": { steps: 200_000 },
};

/** Runs `f` with some evaluation limits changed, then restores them. */
function withLimits<T>(limits: Partial<typeof LIMITS> | undefined, f: () => T): T {
  const saved = { ...LIMITS };
  Object.assign(LIMITS, limits ?? {});
  try {
    return f();
  } finally {
    Object.assign(LIMITS, saved);
  }
}

interface Expected {
  readonly line: number;
  readonly column: number;
  readonly id: string;
  readonly text: string;
}

/** Reads the `expect-error` annotations of a spec. */
function expectations(source: string): Expected[] {
  const out: Expected[] = [];
  source.split("\n").forEach((lineText, i) => {
    const m = ANNOTATION.exec(lineText.replace(/\r$/, ""));
    if (!m) {
      assert.ok(!lineText.includes("expect-error"), `malformed annotation on line ${i + 1}: ${lineText}`);
      return;
    }
    out.push({ line: m[1] ? Number(m[1]) : i + 2, column: Number(m[2]), id: m[3]!, text: m[4]!.trim() });
  });
  return out;
}

/** Runs `lower` and returns the CompileError it must throw. */
function compileError(path: string): CompileError {
  try {
    lower(path);
  } catch (e) {
    if (e instanceof CompileError) return e;
    assert.fail(`expected a CompileError from ${path}, got ${e instanceof Error ? e.stack : String(e)}`);
  }
  assert.fail(`expected ${path} not to compile`);
}

const key = (line: number, column: number, id: string) => `${line}:${column} ${id}`;
const inFile = (d: Diagnostic, path: string) => d.span !== undefined && resolve(d.span.file) === resolve(path);

/** Checks how diagnostics render: location, source line, caret, notes, and never a stack trace. */
function assertRendered(ds: readonly Diagnostic[], source: string): void {
  const out = formatDiagnostics(ds);
  const lines = source.split("\n").map((l) => l.replace(/\r$/, ""));
  for (const d of ds) {
    const s = d.span;
    assert.ok(s, `diagnostic without a span: ${d.id}: ${d.message}`);
    assert.ok(out.includes(`${s.file}:${s.line}:${s.column}: error[${d.id}]: ${d.message}`), out);
    assert.equal(s.lineText, lines[s.line - 1], `lineText of ${key(s.line, s.column, d.id)}`);
    const gutter = String(s.line);
    assert.ok(out.includes(`  ${gutter} | ${s.lineText}\n`), `source line of ${key(s.line, s.column, d.id)}:\n${out}`);
    assert.ok(
      out.includes(`  ${" ".repeat(gutter.length)} | ${" ".repeat(s.column - 1)}^`),
      `caret of ${key(s.line, s.column, d.id)}:\n${out}`,
    );
    for (const n of d.notes) assert.ok(out.includes(`  note: ${n.message}`), out);
  }
  assert.ok(!out.includes("    at "), `stack trace in diagnostics:\n${out}`);
}

const files = [...Deno.readDirSync(DIR)].filter((e) => e.isFile && SPEC_FILE.test(e.name)).map((e) => e.name).sort();

Deno.test("diagnostics: the suite has a spec for every case", () => {
  assert.ok(files.length >= 18, `only ${files.length} specs`);
  const ids = new Set(
    files.filter((f) => !(f in KNOWN_BUGS)).flatMap((f) =>
      expectations(Deno.readTextFileSync(join(DIR, f))).map((e) => e.id)
    ),
  );
  for (
    const id of [
      "unknown-op",
      "unknown-name",
      "bad-argument",
      "not-divisible",
      "bad-schedule",
      "missing-field",
      "bad-size",
      "unknown-field",
      "unsafe-name",
      "top-level-code",
      "bad-import",
      "shape-mismatch",
      "syntax-error",
      "no-default-export",
      "bad-operand",
      "eval-budget",
      "recursion-limit",
    ]
  ) assert.ok(ids.has(id), `no passing spec covers "${id}"`);
});

for (const file of files) {
  Deno.test({
    name: `diagnostics: ${file}`,
    ignore: file in KNOWN_BUGS && !RUN_KNOWN_BUGS,
    fn() {
      const path = join(DIR, file);
      const source = Deno.readTextFileSync(path);
      const want = expectations(source);
      assert.ok(want.length > 0, `${file} has no expect-error annotation`);
      const err = withLimits(LIMITS_FOR[file], () => compileError(path));
      const shown = formatDiagnostics(err.diagnostics);
      const errors = err.diagnostics.filter((d) => d.severity === "error");
      for (const d of errors) assert.ok(inFile(d, path), `error outside ${file}:\n${shown}`);
      assert.deepEqual(
        errors.map((d) => key(d.span!.line, d.span!.column, d.id)).sort(),
        want.map((w) => key(w.line, w.column, w.id)).sort(),
        `diagnostics of ${file}:\n${shown}`,
      );
      for (const w of want) {
        const d = errors.find((d) => key(d.span!.line, d.span!.column, d.id) === key(w.line, w.column, w.id))!;
        assert.ok(
          d.message.includes(w.text),
          `message of ${key(w.line, w.column, w.id)} lacks ${JSON.stringify(w.text)}: ${d.message}`,
        );
      }
      const from = NOTE_FROM[file];
      if (from) {
        for (const d of errors) {
          assert.ok(
            d.notes.some((n) => n.span !== undefined && resolve(n.span.file) === join(ROOT, from)),
            `${d.id} has no note pointing at ${from}:\n${shown}`,
          );
        }
      }
      assertRendered(errors, source);
      assert.ok(!err.message.includes("    at "), err.message);
    },
  });
}

Deno.test("diagnostics: the CLI prints fix hints as notes", async () => {
  const out = await Deno.makeTempDir({ prefix: "varc_diag_" });
  const hints: Record<string, string[]> = {
    "unknown_field.var.ts": ["error[unknown-field]", "note: Known options: name, depth, width, heads", "2 errors"],
    "top_level_code.var.ts": [
      "error[top-level-code]",
      "note: The compiler reads specs and never executes them",
      "2 errors",
    ],
    "not_divisible.var.ts": ["error[not-divisible]", "note: Pick heads among the divisors of 100", "2 errors"],
  };
  const printed: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => printed.push(args.map(String).join(" "));
  try {
    for (const [file, want] of Object.entries(hints)) {
      printed.length = 0;
      const spec = relative(Deno.cwd(), join(DIR, file));
      const code = await main(["compile", spec, "--out", out]);
      const text = printed.join("\n");
      assert.equal(code, 1, text);
      for (const w of want) assert.ok(text.includes(w), `${file}: missing ${JSON.stringify(w)} in\n${text}`);
      assert.match(text, new RegExp(`${spec.replaceAll(".", "\\.")}:\\d+:\\d+: error\\[`));
      assert.match(text, /^ +\d+ \| .+\n +\| +\^+$/m);
      assert.ok(!text.includes("    at "), text);
    }
    assert.deepEqual([...Deno.readDirSync(out)], [], "a failed compile wrote artifacts");
  } finally {
    console.error = original;
    await Deno.remove(out, { recursive: true });
  }
});

/** A relative import of `lang.ts` from `dir`, as specs write it. */
function langFrom(dir: string): string {
  const rel = relative(dir, LANG_PATH);
  return rel.startsWith(".") ? rel : `./${rel}`;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

Deno.test("diagnostics: compiling never executes the spec", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_diag_" });
  try {
    const pwned = join(dir, "pwned");
    const write = (what: string) => `Deno.writeTextFileSync(${JSON.stringify(pwned)}, ${JSON.stringify(what)})`;
    const header = `import { B, input, model, silu, type Tensor } from ${JSON.stringify(langFrom(dir))};`;
    const output = 'export default model({ name: "m", outputs: { y } });';
    /** Each spec would write `pwned` if it ran; `line` is where the compiler must stop it. */
    const cases: Record<string, { lines: string[]; id: string; line: number }> = {
      // Top-level code, a function that writes, and a default export whose evaluation would call it.
      everywhere: {
        lines: [
          header,
          `${write("top level")};`,
          "function touch(x: Tensor): Tensor {",
          `  ${write("function")};`,
          "  return silu(x);",
          "}",
          "export default (() => {",
          `  ${write("default export")};`,
          '  return model({ name: "m", outputs: { y: touch(input("x", [B, 4])) } });',
          "})();",
        ],
        id: "top-level-code",
        line: 2,
      },
      // No top-level code: evaluating the default export reaches the write, which must not run.
      defaultExport: {
        lines: [
          header,
          "export default (() => {",
          `  ${write("default export")};`,
          '  return model({ name: "m", outputs: { y: input("x", [B, 4]) } });',
          "})();",
        ],
        id: "unknown-name",
        line: 3,
      },
      // A valid-looking model whose block writes a file.
      modelFunction: {
        lines: [
          header,
          "function block(x: Tensor): Tensor {",
          `  ${write("block")};`,
          "  return silu(x);",
          "}",
          'export default model({ name: "m", outputs: { y: block(input("x", [B, 4])) } });',
        ],
        id: "unknown-name",
        line: 3,
      },
      // The same through globalThis, eval, the Function constructor and a dynamic import.
      globalThis: {
        lines: [header, `const y = (() => globalThis.${write("globalThis")})();`, output],
        id: "unknown-name",
        line: 2,
      },
      eval: {
        lines: [header, `const y = (() => eval(${JSON.stringify(write("eval"))}))();`, output],
        id: "unknown-op",
        line: 2,
      },
      functionConstructor: {
        lines: [header, `const y = (() => new Function(${JSON.stringify(write("Function"))})())();`, output],
        id: "unsupported-syntax",
        line: 2,
      },
      dynamicImport: {
        lines: [
          header,
          `const y = (() => import("data:text/javascript,${encodeURIComponent(write("import"))}"))();`,
          output,
        ],
        id: "unsupported-syntax",
        line: 2,
      },
    };
    for (const [name, c] of Object.entries(cases)) {
      const spec = join(dir, `${name}.var.ts`);
      const source = c.lines.join("\n") + "\n";
      await Deno.writeTextFile(spec, source);
      const err = compileError(spec);
      const shown = formatDiagnostics(err.diagnostics);
      assert.ok(
        err.diagnostics.some((d) => d.id === c.id && d.span?.line === c.line && inFile(d, spec)),
        `${name}: expected ${c.id} on line ${c.line}:\n${shown}`,
      );
      assert.ok(!exists(pwned), `${name}: compiling the spec wrote ${pwned}`);
      assertRendered(err.diagnostics, source);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "diagnostics: an import of a missing module is reported at the import",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "varc_diag_" });
    try {
      const spec = join(dir, "missing_import.var.ts");
      const source = `import { width } from "./does_not_exist.ts";\nexport default width;\n`;
      await Deno.writeTextFile(spec, source);
      const err = compileError(spec);
      assert.equal(err.diagnostics.length, 1, formatDiagnostics(err.diagnostics));
      const d = err.diagnostics[0]!;
      assert.ok(inFile(d, spec), formatDiagnostics(err.diagnostics));
      assert.deepEqual([d.span!.line, d.span!.column], [1, 23]);
      assertRendered(err.diagnostics, source);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "diagnostics: deeply nested expressions are reported, not a stack overflow",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "varc_diag_" });
    try {
      const sources = {
        parens: `export const a = ${"(".repeat(5000)}1${")".repeat(5000)};\nexport default a;\n`,
        sum: `export const a = ${Array(20000).fill("1").join(" + ")};\nexport default a;\n`,
      };
      for (const [name, source] of Object.entries(sources)) {
        const spec = join(dir, `${name}.var.ts`);
        await Deno.writeTextFile(spec, source);
        const err = compileError(spec);
        assert.ok(err.diagnostics.every((d) => inFile(d, spec)), formatDiagnostics(err.diagnostics));
        assertRendered(err.diagnostics, source);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
