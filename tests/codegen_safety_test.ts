/**
 * Spec-provided names, strings and numbers can never change the meaning of generated JS.
 *
 * Names that could break out of a string, a comment or an object key are refused by the front end
 * with a spanned diagnostic. Names that are accepted, however JS-reserved, give a module that
 * behaves exactly like the same spec with plain names. NaN and Infinity never reach code;
 * -0, 1e308 and 5e-324 reach it unchanged.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compile, CompileError } from "../compiler/mod.ts";
import { bindModel, type HostTensor, importModel, type ModelModule } from "../runtime/mod.ts";
import { randomF32 } from "../runtime/random.ts";
import { parseSafetensors, writeSafetensors } from "../runtime/safetensors.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SPEC = join(ROOT, "tests", "codegen_safety.var.ts");
const LANG = "../compiler/dsl/lang.ts";

/** A string as a TS string literal using only ASCII (raw U+2028 would end a TS string). */
function lit(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

async function compileErrorOf(text: string): Promise<CompileError> {
  try {
    await compile(SPEC, {}, { text });
  } catch (e) {
    if (e instanceof CompileError) return e;
    throw e;
  }
  assert.fail(`expected a CompileError for:\n${text}`);
}

// ── hostile names are refused ─────────────────────────────────────────────

const HOSTILE = [
  'a"b',
  "a'b",
  "a`b",
  "${x}",
  "a${x}b",
  "a\nb",
  "a\r\nb",
  "a*/b",
  "/*a",
  "a\u2028b",
  "a\u2029b",
  "a\u0000b",
  "a b",
  "",
  "é",
  "a-b",
  "</script>",
];

/** Where a name reaches the spec: a line of spec text, and the column its literal starts at. */
const PLACES: Readonly<Record<string, (n: string) => string>> = {
  "model name": (n) => `export default model({ name: ${lit(n)}, outputs: { y: x } });`,
  "input name": (n) => `export default model({ name: "m", outputs: { y: input(${lit(n)}, [B, 2]) } });`,
  "param name": (n) => `export default model({ name: "m", outputs: { y: add(x, param(${lit(n)}, [2])) } });`,
  "tensor label": (n) => `export default model({ name: "m", outputs: { y: tag(x, ${lit(n)}) } });`,
  "entry name": (n) => `export default model({ name: "m", entries: { [${lit(n)}]: { y: x } } });`,
  "output name": (n) => `export default model({ name: "m", outputs: { [${lit(n)}]: x } });`,
  "VAR preset name": (n) =>
    `export default model({ name: "m", outputs: { y: x }, meta: { c: varConfig({ name: ${
      lit(n)
    }, depth: 1, width: 8, heads: 2, schedule: [1, 2] }).width } });`,
};

const HEADER =
  `import { add, B, input, model, param, scale, tag, varConfig } from "${LANG}";\nconst x = input("x", [B, 2]);\n`;

Deno.test("codegen safety: hostile names are refused with a spanned unsafe-name diagnostic", async () => {
  for (const [place, line] of Object.entries(PLACES)) {
    for (const name of HOSTILE) {
      const text = HEADER + line(name);
      const err = await compileErrorOf(text);
      const what = `${place} ${JSON.stringify(name)}`;
      assert.equal(err.diagnostics.length, 1, `${what}: ${err.message}`);
      const d = err.diagnostics[0]!;
      assert.equal(d.id, "unsafe-name", `${what}: ${err.message}`);
      assert.equal(d.span?.line, 3, `${what}: ${err.message}`);
      // The span points at the name itself (its literal, or the property holding it).
      const col = text.split("\n")[2]!.indexOf(lit(name)) + 1;
      assert.ok(col > 0 && d.span!.column <= col && col < d.span!.column + d.span!.length, `${what}: ${err.message}`);
      assert.ok(
        !err.message.includes("\u2028") && !err.message.includes("\u0000"),
        `${what}: raw control text in ${JSON.stringify(err.message)}`,
      );
    }
  }
});

Deno.test("codegen safety: __proto__ is refused wherever it would be an object key in generated code", async () => {
  for (const place of ["input name", "tensor label", "entry name", "output name"]) {
    const err = await compileErrorOf(HEADER + PLACES[place]!("__proto__"));
    assert.deepEqual(err.diagnostics.map((d) => [d.id, d.span?.line]), [["unsafe-name", 3]], err.message);
    assert.match(err.message, /__proto__/);
  }
  const meta = await compileErrorOf(
    HEADER + 'export default model({ name: "m", outputs: { y: x }, meta: { __proto__: 1 } });',
  );
  assert.deepEqual(meta.diagnostics.map((d) => [d.id, d.span?.line, d.span?.column]), [["unsafe-name", 3, 62]]);
});

// ── accepted names behave like plain ones ─────────────────────────────────

interface Names {
  model: string;
  input: string;
  params: [string, string, string];
  labels: [string, string];
  entries: [string, string];
  outputs: [string, string, string];
  meta: Record<string, string>;
  optional: string[];
}

const PLAIN: Names = {
  model: "plain",
  input: "x",
  params: ["w1", "b1", "b2"],
  labels: ["h", "y"],
  entries: ["forward", "double"],
  outputs: ["y", "h", "z"],
  meta: { note: "plain" },
  optional: ["encoder.*"],
};

const RESERVED: Names = {
  model: "__proto__",
  input: "constructor",
  params: ["blocks.0.attn.q", "__proto__", "0.constructor.1"],
  labels: ["toString", "hasOwnProperty.valueOf"],
  entries: ["constructor", "default"],
  outputs: ["delete", "toString", "valueOf"],
  meta: {
    constructor: "</script>\u2028${x}`'\"*/ globalThis.pwned = 1; /*",
    'a"b': "\u2029",
    "*/ globalThis.pwned = 2; /*": "x",
    "\u2028": "\ud83e\udd95 \u202e",
    toString: "hasOwnProperty",
  },
  optional: ["encoder.*", "*/ globalThis.pwned = 3; /*", "\u2028", "${x}", "`"],
};

function spec(n: Names): string {
  const [p1, p2, p3] = n.params.map(lit);
  const [e1, e2] = n.entries.map(lit);
  const [o1, o2, o3] = n.outputs.map(lit);
  const meta = Object.entries(n.meta).map(([k, v]) => `${lit(k)}: ${lit(v)}`).join(", ");
  return `import { add, B, input, linear, model, param, scale, silu, tag } from "${LANG}";
const x = input(${lit(n.input)}, [B, 3]);
const h = tag(silu(linear(x, param(${p1}, [4, 3]), param(${p2}, [4]))), ${lit(n.labels[0])});
const y = tag(scale(add(h, param(${p3}, [1, 4])), 0.5), ${lit(n.labels[1])});
export default model({
  name: ${lit(n.model)},
  entries: {
    ${e1}: { ${o1}: y, ${o2}: h },
    ${e2}: { ${o3}: scale(y, 2) },
  },
  meta: { ${meta} },
  optionalWeights: [${n.optional.map(lit).join(", ")}],
});
`;
}

async function build(n: Names): Promise<{ mod: ModelModule; irMeta: unknown; source: string }> {
  const compiled = await compile(SPEC, {}, { text: spec(n) });
  const mod = await importModel(compiled.emitted.bundle);
  return { mod, irMeta: compiled.module.meta, source: compiled.emitted.source };
}

/** Runs every entry with the same weights (by position) and inputs; returns outputs and taps. */
async function runAll(n: Names, mod: ModelModule): Promise<{ outputs: HostTensor[][]; taps: HostTensor[][] }> {
  const shapes: Record<string, number[]> = { 0: [4, 3], 1: [4], 2: [1, 4] };
  const tensors = n.params.map((name, i) => ({
    name,
    dtype: "F32" as const,
    shape: shapes[i]!,
    data: randomF32(shapes[i]!.reduce((a, d) => a * d, 1), 100 + i),
  }));
  const file = parseSafetensors(writeSafetensors(tensors), `mem/${n.model}.safetensors`);
  const loaded = bindModel(mod, { var: file });
  const inputs = { [n.input]: { data: randomF32(6, 7), shape: [2, 3] } };
  const outputs: HostTensor[][] = [], taps: HostTensor[][] = [];
  for (const entry of n.entries) {
    const r = await loaded.run(entry, inputs, { taps: n.labels });
    outputs.push(Object.values(r.outputs));
    taps.push(n.labels.map((l) => r.taps[l]!));
    assert.deepEqual(Object.keys(r.taps), n.labels, "every requested tap is an own key");
  }
  return { outputs, taps };
}

Deno.test("codegen safety: JS-reserved names that are accepted give the same module as plain names", async () => {
  const plain = await build(PLAIN);
  const reserved = await build(RESERVED);
  const g = globalThis as Record<string, unknown>;
  assert.equal(g.pwned, undefined);

  const info = reserved.mod.info;
  assert.equal(info.name, RESERVED.model);
  assert.deepEqual(Object.keys(reserved.mod.entries), RESERVED.entries);
  assert.deepEqual(Object.keys(info.entries), RESERVED.entries);
  assert.deepEqual(info.params.map((p) => p.name), RESERVED.params);
  assert.deepEqual(info.entries[RESERVED.entries[0]]!.inputs.map((i) => i.name), [RESERVED.input]);
  assert.deepEqual(info.entries[RESERVED.entries[0]]!.outputs.map((o) => o.name), RESERVED.outputs.slice(0, 2));
  assert.deepEqual(info.entries[RESERVED.entries[0]]!.labels, RESERVED.labels);
  assert.deepEqual(info.optionalWeights, RESERVED.optional);
  // Metadata comes back key for key, as own data properties of a plain object (passes may add keys).
  assert.deepEqual(info.meta, reserved.irMeta);
  assert.equal(Object.getPrototypeOf(info.meta), Object.prototype);
  assert.deepEqual(Object.keys(info.meta).slice(0, Object.keys(RESERVED.meta).length), Object.keys(RESERVED.meta));
  for (const [k, v] of Object.entries(RESERVED.meta)) assert.ok(Object.hasOwn(info.meta, k) && info.meta[k] === v, k);

  const a = await runAll(PLAIN, plain.mod), b = await runAll(RESERVED, reserved.mod);
  assert.equal(a.outputs.length, b.outputs.length);
  for (let e = 0; e < a.outputs.length; e++) {
    assert.equal(a.outputs[e]!.length, b.outputs[e]!.length);
    for (let o = 0; o < a.outputs[e]!.length; o++) {
      assert.deepEqual(b.outputs[e]![o]!.shape, a.outputs[e]![o]!.shape);
      assert.deepEqual([...b.outputs[e]![o]!.data], [...a.outputs[e]![o]!.data]);
    }
    for (let t = 0; t < a.taps[e]!.length; t++) assert.deepEqual([...b.taps[e]![t]!.data], [...a.taps[e]![t]!.data]);
  }
  // The output objects have exactly the spec's names as own keys.
  const file = parseSafetensors(
    writeSafetensors(RESERVED.params.map((name, i) => ({
      name,
      dtype: "F32" as const,
      shape: [[4, 3], [4], [1, 4]][i]!,
      data: new Float32Array([12, 4, 4][i]!),
    }))),
    "mem/reserved.safetensors",
  );
  const r = await bindModel(reserved.mod, { var: file }).run(RESERVED.entries[0], {
    [RESERVED.input]: { data: new Float32Array(3), shape: [1, 3] },
  });
  assert.deepEqual(Object.keys(r.outputs), RESERVED.outputs.slice(0, 2));
  assert.equal(g.pwned, undefined);
});

// ── numbers ───────────────────────────────────────────────────────────────

Deno.test("codegen safety: NaN and Infinity never reach generated code", async () => {
  const cases = [
    "scale(x, 0 / 0)",
    "scale(x, 1 / 0)",
    "scale(x, 1e309)",
    "shift(x, -1 / 0)",
    "clampMax(x, 0 / 0)",
    "clamp(x, 0 / 0, 1)",
    "clamp(x, 0, 1 / 0)",
    "layerNorm(x, 0 / 0)",
    "layerNorm(x, 1 / 0)",
    "l2Normalize(x, 1 / 0)",
    'groupNorm(reshape(x, [B, 2, 1, 1]), param("w", [2]), param("b", [2]), 1, 0 / 0)',
    "attention(q, q, q, { scale: 0 / 0, mask: noMask() })",
    "attention(q, q, q, { scale: -1 / 0, mask: noMask() })",
  ];
  const header =
    `import { attention, B, clamp, clampMax, groupNorm, input, l2Normalize, layerNorm, model, noMask, param, ` +
    `reshape, scale, shift } from "${LANG}";\nconst x = input("x", [B, 2]);\nconst q = reshape(x, [B, 1, 1, 2]);\n`;
  for (const c of cases) {
    const err = await compileErrorOf(header + `export default model({ name: "m", outputs: { y: ${c} } });`);
    assert.deepEqual(err.diagnostics.map((d) => [d.id, d.span?.line]), [["bad-argument", 4]], `${c}: ${err.message}`);
    assert.match(err.message, /finite|NaN|Infinity/, c);
  }
  const meta = await compileErrorOf(
    header + 'export default model({ name: "m", outputs: { y: x }, meta: { a: [1, -1 / 0] } });',
  );
  assert.deepEqual(meta.diagnostics.map((d) => d.id), ["bad-argument"], meta.message);
});

Deno.test("codegen safety: -0, 1e308 and 5e-324 constants compute exactly what float64 arithmetic gives", async () => {
  const ops: Record<string, [string, (v: number) => number]> = {
    a: ["scale(x, -0)", (v) => v * -0],
    b: ["scale(x, 1e308)", (v) => v * 1e308],
    c: ["scale(x, 5e-324)", (v) => v * 5e-324],
    d: ["shift(x, -0)", (v) => v + -0],
    e: ["shift(x, 5e-324)", (v) => v + 5e-324],
    f: ["clampMax(x, -0)", (v) => Math.min(v, -0)],
    g: ["clamp(x, -0, 5e-324)", (v) => Math.min(Math.fround(Math.max(v, -0)), 5e-324)],
    h: ["scale(x, -1e308)", (v) => v * -1e308],
    i: ["shift(x, 1e308)", (v) => v + 1e308],
    j: ["scale(scale(x, 1e308), 1e-308)", (v) => Math.fround(v * 1e308) * 1e-308],
    k: ["scale(x, 4.9406564584124654e-324)", (v) => v * 5e-324],
    l: ["scale(x, 0.1)", (v) => v * 0.1],
  };
  const outs = Object.entries(ops).map(([k, [e]]) => `${k}: ${e}`).join(", ");
  const text = `import { B, clamp, clampMax, input, l2Normalize, layerNorm, model, scale, shift } from "${LANG}";
const x = input("x", [B, 8]);
export default model({ name: "numbers", outputs: { ${outs}, m: l2Normalize(x, 1e-12), n: layerNorm(x, 2.5e-300) } });
`;
  const compiled = await compile(SPEC, {}, { text });
  for (const literal of ["-0", "1e+308", "5e-324", "-1e+308", "1e-12", "2.5e-300"]) {
    assert.match(
      compiled.emitted.source,
      new RegExp(`(value|eps): ${literal.replace("+", "\\+")}( \\}\\)|,)`),
      literal,
    );
  }
  const mod = await importModel(compiled.emitted.bundle);
  const xs = new Float32Array([0, -0, 1, -1, 3.4028234663852886e38, 1.401298464324817e-45, -2.5, 0.75]);
  const r = await mod.entries.forward!(() => new Float32Array(0), { x: { data: xs, shape: [1, 8] } });
  for (const [k, [e, f]] of Object.entries(ops)) {
    const got = [...r.outputs[k]!.data];
    const want = [...xs].map((v) => Math.fround(f(v)));
    got.forEach((v, i) => assert.ok(Object.is(v, want[i]), `${e} at x = ${xs[i]}: got ${v}, float64 gives ${want[i]}`));
  }
});
