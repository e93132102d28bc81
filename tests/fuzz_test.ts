/**
 * A short deterministic fuzz run (spec mutants through the front end and the pass pipeline,
 * safetensors mutants through the reader and the weight binder, command lines of every class of the
 * command-line fuzzer) that must end without a failure, and the hostile inputs the full fuzzer found,
 * each pinned to the diagnostic it must produce (command lines: tests/cli_regressions_test.ts).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CompileError, type Diagnostic } from "../compiler/diagnostics.ts";
import { parseSpec } from "../compiler/dsl/mod.ts";
import { formatSummary, FUZZ_LIMITS, runFuzz, withLimits } from "../tools/fuzz_lib.ts";
import { caseRng, ROOT } from "./fuzz/common.ts";
import { loadSpecCorpus, makeSpecMutant } from "./fuzz/spec_fuzz.ts";
import { loadWeightsCorpus, makeWeightsMutant, rawFile } from "./fuzz/weights_fuzz.ts";
import { CLI_CLASSES, makeCliMutant } from "./fuzz/cli_fuzz.ts";
import { parseSafetensors, SafetensorsError } from "../runtime/safetensors.ts";

Deno.test("fuzz: 300 spec and 300 checkpoint mutants end in success or a well-formed error", async () => {
  const summary = await runFuzz({
    spec: 300,
    weights: 300,
    cli: 0,
    seed: 20_240_601,
    jobs: 0,
    timeoutMs: 10_000,
    outDir: join(ROOT, "out", "fuzz-test"),
  });
  const failures = summary.spec.outcomes.failure + summary.weights.outcomes.failure;
  assert.equal(failures, 0, formatSummary(summary));
  assert.equal(summary.spec.cases, 300);
  assert.equal(summary.weights.cases, 300);
  // The corpus must still reach every stage: some mutants compile, some are refused.
  assert.ok(summary.spec.outcomes.ok > 10 && summary.spec.outcomes.rejected > 100, formatSummary(summary));
  assert.ok(summary.weights.outcomes.ok > 10 && summary.weights.outcomes.rejected > 100, formatSummary(summary));
});

Deno.test("fuzz: command lines of every class end in success or a clean error, in time", async () => {
  // The first cases of each class for this seed; atomic-writes spawns processes, so few of those.
  const seed = 20_240_601;
  const want: Record<string, number> = {
    "special-files": 10,
    "output-paths": 10,
    "atomic-writes": 2,
    "non-finite": 6,
    "internal-errors": 10,
    flags: 8,
  };
  const left = { ...want };
  const only: { kind: "cli"; index: number }[] = [];
  for (let index = 0; Object.values(left).some((n) => n > 0); index++) {
    const cls = makeCliMutant(caseRng(seed, "cli", index)).cls;
    if (left[cls]! > 0) left[cls]!--, only.push({ kind: "cli", index });
  }
  const summary = await runFuzz({
    spec: 0,
    weights: 0,
    cli: 0,
    seed,
    jobs: 0,
    timeoutMs: 20_000,
    outDir: join(ROOT, "out", "fuzz-test"),
    only,
  });
  assert.equal(summary.cli.outcomes.failure, 0, formatSummary(summary));
  for (const cls of CLI_CLASSES) {
    const o = summary.cli.byClass[cls]!;
    assert.equal(o.ok + o.rejected, want[cls], `${cls}: ${formatSummary(summary)}`);
  }
  assert.ok(summary.cli.outcomes.ok > 0 && summary.cli.outcomes.rejected > 5, formatSummary(summary));
});

Deno.test("fuzz: cases are a function of (seed, fuzzer, index)", () => {
  const spec = loadSpecCorpus(join(ROOT, "out", "fuzz-test-tmp"));
  const weights = loadWeightsCorpus();
  for (const index of [0, 1, 17, 123]) {
    const a = makeSpecMutant(spec, caseRng(7, "spec", index));
    const b = makeSpecMutant(spec, caseRng(7, "spec", index));
    assert.deepEqual(a, b);
    const c = makeWeightsMutant(weights, caseRng(7, "weights", index), index);
    const d = makeWeightsMutant(weights, caseRng(7, "weights", index), index);
    assert.deepEqual([c.cls, c.seed, c.view.byteOffset, [...c.view]], [d.cls, d.seed, d.view.byteOffset, [...d.view]]);
  }
  assert.notDeepEqual(makeSpecMutant(spec, caseRng(7, "spec", 1)), makeSpecMutant(spec, caseRng(8, "spec", 1)));
  for (const index of [0, 1, 17, 123]) {
    assert.deepEqual(makeCliMutant(caseRng(7, "cli", index)), makeCliMutant(caseRng(7, "cli", index)));
  }
  assert.notDeepEqual(makeCliMutant(caseRng(7, "cli", 1)), makeCliMutant(caseRng(8, "cli", 1)));
});

// ── inputs the fuzzer found, with the diagnostic each must produce ─────────

const HEADER =
  `import { B, input, model, phiIndex, range, tag } from "../compiler/dsl/lang.ts";\nconst x = input("x", [B, 2]);\n`;
const SPEC = join(ROOT, "tests", "fuzz_regression.var.ts");

/** Reads `body` (after HEADER, so its first line is line 3) and returns the CompileError's diagnostics. */
function diagnosticsOf(body: string): readonly Diagnostic[] {
  try {
    withLimits(FUZZ_LIMITS, () => parseSpec(SPEC, HEADER + body));
  } catch (e) {
    if (e instanceof CompileError) return e.diagnostics;
    throw e;
  }
  assert.fail("expected a CompileError");
}

const REGRESSIONS: readonly { name: string; body: string; id: string; at: string; text: string }[] = [
  {
    name: "string doubled past the limit (was RangeError: Invalid string length)",
    body: 'const s = ((t: string) => { let u = t; for (let i = 0; i < 40; i++) u = u + u; return u; })("ab");\n' +
      'export default model({ name: "m", outputs: { y: x } });',
    id: "bad-size",
    at: "3:73",
    text: "String of 2097152 characters is too long",
  },
  {
    name: "template string doubled past the limit",
    body: 'const s = ((t: string) => { let u = t; for (let i = 0; i < 40; i++) u = `${u}${u}`; return u; })("ab");\n' +
      'export default model({ name: "m", outputs: { y: x } });',
    id: "bad-size",
    at: "3:73",
    text: "too long",
  },
  {
    name: "phiIndex of 2^30 scales (was a 1G-element array, then RangeError)",
    body: 'const p = phiIndex(2 ** 30);\nexport default model({ name: "m", outputs: { y: x } });',
    id: "bad-size",
    at: "3:20",
    text: "phiIndex(1073741824) is longer than 1048576 elements",
  },
  {
    name: "spreading two million-element arrays (was reported as nesting too deep)",
    body: 'const a = [...range(2 ** 20), ...range(2 ** 20)];\nexport default model({ name: "m", outputs: { y: x } });',
    id: "bad-size",
    at: "3:31",
    text: "Array of 2097152 elements is too large",
  },
  {
    name: "push past the array limit",
    body: "const n = ((a: number[]) => { a.push(...range(2 ** 20)); return a.length; })([1]);\n" +
      'export default model({ name: "m", outputs: { y: x } });',
    id: "bad-size",
    at: "3:31",
    text: "Array of 1048577 elements is too large",
  },
  {
    name: "metadata with a __proto__ key (the generated object literal would set its prototype)",
    body: 'export default model({ name: "m", outputs: { y: x }, meta: { ["__proto__"]: { a: 1 } } });',
    id: "unsafe-name",
    at: "3:62",
    text: 'cannot have the key "__proto__"',
  },
  {
    name: "metadata holding NaN (JSON writes null)",
    body: 'export default model({ name: "m", outputs: { y: x }, meta: { a: 0 / 0 } });',
    id: "bad-argument",
    at: "3:62",
    text: "cannot hold number NaN",
  },
  {
    name: "metadata that contains itself (was reported as nesting too deep, at 1:1)",
    body: "const l = ((a: unknown[]) => { a.push(a); return a; })([]);\n" +
      'export default model({ name: "m", outputs: { y: x }, meta: { l } });',
    id: "bad-argument",
    at: "4:62",
    text: "nests deeper than 32 levels",
  },
  {
    name: "an entry named __proto__",
    body: 'export default model({ name: "m", entries: { __proto__: { y: x } } });',
    id: "unsafe-name",
    at: "3:46",
    text: 'Cannot use "__proto__" as an entry name',
  },
  {
    name: "an output named __proto__",
    body: 'export default model({ name: "m", outputs: { __proto__: x } });',
    id: "unsafe-name",
    at: "3:46",
    text: 'Cannot use "__proto__" as an output name',
  },
  {
    name: "a tap label __proto__",
    body: 'export default model({ name: "m", outputs: { y: tag(x, "__proto__") } });',
    id: "unsafe-name",
    at: "3:56",
    text: 'Cannot use "__proto__" as a tensor label',
  },
  {
    name: "an import whose module name is a template literal (was InvalidOperationError)",
    body: 'import { f } from `./lib.ts`;\nexport default model({ name: "m", outputs: { y: x } });',
    id: "bad-import",
    at: "3:1",
    text: "computed module name",
  },
  {
    name: "an import path with a line separator (would end a comment of the generated code)",
    body:
      'import { f } from "./x\\u2028globalThis.pwned=1;var q=0?q.ts";\nexport default model({ name: "m", outputs: { y: x } });',
    id: "bad-import",
    at: "3:19",
    text: "control or line-break character",
  },
];

for (const r of REGRESSIONS) {
  Deno.test(`fuzz regression: ${r.name}`, () => {
    const ds = diagnosticsOf(r.body);
    assert.equal(ds.length, 1, ds.map((d) => d.message).join("\n"));
    const d = ds[0]!;
    assert.equal(d.id, r.id, d.message);
    assert.equal(`${d.span?.line}:${d.span?.column}`, r.at, d.message);
    assert.ok(d.message.includes(r.text), d.message);
  });
}

Deno.test("fuzz regression: destructuring binds rest elements and defaults; exported patterns are exported", () => {
  const m = parseSpec(
    SPEC,
    HEADER + "export const [first, ...rest] = [1, 2, 3];\n" +
      "export const { a = 5, b: { c }, ...others } = { b: { c: 7 }, d: 8, e: 9 };\n" +
      'export default model({ name: "m", outputs: { y: x }, meta: { first, rest, a, c, others } });',
  );
  assert.deepEqual(m.meta, { first: 1, rest: [2, 3], a: 5, c: 7, others: { d: 8, e: 9 } });
});

Deno.test("fuzz regression: numeric literals keep their value (1e-12 was read as 1, 1e308 as 1, 5e-324 as 5)", () => {
  const m = parseSpec(
    SPEC,
    HEADER + 'export default model({ name: "m", outputs: { y: x }, meta: { a: 1e-12, b: 1e308, c: 5e-324, d: 1e21, ' +
      "e: 0x10, f: 1_000, g: 2.5e-7, h: { 1e21: 1 } } });",
  );
  assert.deepEqual(m.meta, { a: 1e-12, b: 1e308, c: 5e-324, d: 1e21, e: 16, f: 1000, g: 2.5e-7, h: { "1e+21": 1 } });
});

Deno.test("fuzz regression: a spec over 1 MiB is refused when given as text, at its first line", () => {
  const ds = diagnosticsOf('export default model({ name: "m", outputs: { y: x } });\n//' + "é".repeat(600_000));
  assert.deepEqual(ds.map((d) => [d.id, d.span?.line, d.span?.column, d.span?.lineText]), [
    ["spec-too-large", 1, 1, HEADER.split("\n")[0]],
  ]);
});

Deno.test("fuzz regression: spans stay fast in a spec with many declarations (was quadratic)", () => {
  const decls = Array.from({ length: 40_000 }, (_, i) => `const c${i} = ${i};\n`).join("");
  const t0 = performance.now();
  const m = withLimits(
    FUZZ_LIMITS,
    () => parseSpec(SPEC, HEADER + decls + 'export default model({ name: "m", outputs: { y: x }, meta: { c39999 } });'),
  );
  const ms = performance.now() - t0;
  assert.equal(m.meta.c39999, 39999);
  assert.ok(ms < 8000, `${ms.toFixed(0)} ms`);
});

Deno.test("fuzz regression: Math.max of a million numbers (was reported as nesting too deep)", () => {
  const m = parseSpec(
    SPEC,
    HEADER +
      'export default model({ name: "m", outputs: { y: x }, meta: { m: Math.max(...range(2 ** 20)), n: Math.min(3, 1, 2) } });',
  );
  assert.deepEqual(m.meta, { m: 2 ** 20 - 1, n: 1 });
});

Deno.test("fuzz regression: a header value nested 4 million deep is refused quickly (rendering it took 17 s)", () => {
  const d = 4_000_000;
  const file = rawFile(`{"a":${"[".repeat(d)}${"]".repeat(d)}}`, new Uint8Array(0));
  const t0 = performance.now();
  assert.throws(() => parseSafetensors(file, "mem/deep.safetensors"), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError);
    assert.equal(
      e.message,
      `mem/deep.safetensors: tensor "a": expected an object with dtype, shape, data_offsets, found ${
        "[".repeat(77)
      }...`,
    );
    return true;
  });
  const ms = performance.now() - t0;
  assert.ok(ms < 10_000, `${ms.toFixed(0)} ms`);
});
