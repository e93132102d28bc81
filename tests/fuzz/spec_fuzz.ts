/**
 * @file The spec fuzzer: seeded mutants of DSL specs and the oracle they are judged by.
 *
 * Seeds are the example and test specs, the small specs beside this file, the diagnostics suite,
 * and the VAR/VQ-VAE libraries themselves (read as a spec from inside `compiler/dsl/lib/`). A mutant
 * is read with `parseSpec` (and lowered through the pass pipeline for a sample of cases); it must
 * end in a module or in a CompileError whose every diagnostic has a span inside a real file.
 */
import { dirname, join, relative, resolve } from "node:path";
import { ts } from "ts-morph";
import { CompileError, type Diagnostic, formatDiagnostics, type SourceSpan } from "../../compiler/diagnostics.ts";
import { parseSpec } from "../../compiler/dsl/mod.ts";
import { compile } from "../../compiler/mod.ts";
import type { IrModule, MetaValue } from "../../compiler/ir/node.ts";
import { resolveOptions } from "../../compiler/options.ts";
import { runPipeline } from "../../compiler/pass.ts";
import { defaultPipeline } from "../../compiler/pipeline.ts";
import { type Artifact, describeError, type Outcome, type Rng, ROOT } from "./common.ts";

/** The front end's spec size limit (compiler/dsl/mod.ts). */
export const MAX_SPEC_BYTES = 1 << 20;
const LANG = join(ROOT, "compiler/dsl/lang.ts");

/** A spec to mutate. `path` is where the mutant claims to live (imports resolve from there). */
export interface SpecSeed {
  readonly name: string;
  readonly path: string;
  readonly text: string;
  /** Relative frequency among seeds. */
  readonly weight: number;
  /** Share of this seed's cases that also run the pass pipeline. */
  readonly lowerRate: number;
}

/** One generated spec case. */
export interface SpecMutant {
  readonly cls: string;
  readonly seed: string;
  readonly path: string;
  readonly text: string;
  /** Raw bytes written to disk instead of `text` (invalid UTF-8 and the like). */
  readonly bytes?: Uint8Array;
  /** Written to a temporary file and read from disk (size limit, decoding) instead of passed as text. */
  readonly onDisk: boolean;
  /** The temporary file's name when on disk (sometimes hostile: quotes, line separators). */
  readonly diskName?: string;
  readonly lower: boolean;
  /** Also generate code (JS backend) when lowering succeeds, and check the generated source. */
  readonly emit: boolean;
}

/** Seeds and scratch space of the spec fuzzer. */
export interface SpecCorpus {
  readonly seeds: readonly SpecSeed[];
  /** Directory for on-disk mutants (created on demand, removed by the caller). */
  readonly tmpDir: string;
}

const LIB_TAILS: Readonly<Record<string, string>> = {
  "var.ts": `
export default varModel({
  name: "fuzz_lib_var",
  depth: 1,
  width: 8,
  heads: 2,
  classes: 2,
  vocab: 4,
  cvae: 2,
  schedule: [1, 2],
  vaeCh: 32,
  vaeChMult: [1],
  vaeResBlocks: 1,
});
`,
  "vqvae.ts": `
import { input as fuzzInput, model as fuzzModel, varConfig as fuzzConfig } from "../lang.ts";
const fuzzC = fuzzConfig({
  name: "fuzz_lib_vqvae",
  depth: 1,
  width: 8,
  heads: 2,
  vocab: 4,
  cvae: 2,
  schedule: [1, 2],
  vaeCh: 32,
  vaeChMult: [1, 2],
  vaeResBlocks: 1,
});
export default fuzzModel({
  name: "fuzz_lib_vqvae",
  entries: {
    decode: { img: toUnit(decoder(fuzzInput("fhat", [B, 2, 2, 2]), fuzzC)) },
    fhat: { fhat: scaleResidual(fuzzInput("idx", [B, 4], "i32"), 1, fuzzC) },
  },
});
`,
};

/** Loads every seed: specs from the repository plus the DSL libraries read as specs. */
export function loadSpecCorpus(tmpDir: string): SpecCorpus {
  const seeds: SpecSeed[] = [];
  const add = (rel: string, weight: number, lowerRate: number) => {
    const path = join(ROOT, rel.replace(/\.txt$/, ""));
    seeds.push({ name: rel, path, text: Deno.readTextFileSync(join(ROOT, rel)), weight, lowerRate });
  };
  const list = (dir: string, re: RegExp) =>
    [...Deno.readDirSync(join(ROOT, dir))].filter((e) => e.isFile && re.test(e.name)).map((e) => `${dir}/${e.name}`)
      .sort();
  add("tests/fuzz/ops.var.ts", 14, 1);
  add("tests/fuzz/lang_features.var.ts", 14, 1);
  add("tests/fuzz/small_var.var.ts", 5, 0.3);
  for (const f of list("tests/specs", /\.var\.ts$/)) add(f, f.includes("512") ? 1 : 5, 0.25);
  for (const f of list("examples", /\.var\.ts$/)) add(f, f.includes("tiny") ? 2 : 0.4, 0.05);
  const diagnostics = list("tests/diagnostics", /\.var\.ts(\.txt)?$/);
  for (const f of diagnostics) add(f, 20 / diagnostics.length, 1);
  for (const [lib, tail] of Object.entries(LIB_TAILS)) {
    const text = Deno.readTextFileSync(join(ROOT, "compiler/dsl/lib", lib)) + tail;
    const path = join(ROOT, "compiler/dsl/lib", `fuzz_${lib.replace(".ts", "")}_lib.var.ts`);
    seeds.push({ name: `compiler/dsl/lib/${lib}`, path, text, weight: lib === "var.ts" ? 6 : 4, lowerRate: 0.3 });
  }
  return { seeds, tmpDir };
}

// ── tokens and dictionaries ────────────────────────────────────────────────

interface Tok {
  readonly start: number;
  readonly end: number;
  readonly kind: ts.SyntaxKind;
}

function scanTokens(text: string): Tok[] {
  const sc = ts.createScanner(ts.ScriptTarget.Latest, true, ts.LanguageVariant.Standard, text);
  const out: Tok[] = [];
  for (let k = sc.scan(); k !== ts.SyntaxKind.EndOfFileToken && out.length < 100_000; k = sc.scan()) {
    out.push({ start: sc.getTokenStart(), end: sc.getTokenEnd(), kind: k });
  }
  return out;
}

const PUNCTUATION = [
  "(",
  ")",
  "[",
  "]",
  "{",
  "}",
  ",",
  ";",
  ".",
  "...",
  "=>",
  "=",
  "+",
  "-",
  "*",
  "/",
  "%",
  "**",
  "?",
  ":",
  "??",
  "?.",
  "!",
  "<",
  ">",
  "<=",
  "===",
  "!==",
  "==",
  "&&",
  "||",
  "++",
  "--",
  "+=",
  "-=",
  "*=",
  "/=",
  "&",
  "|",
  "^",
  "~",
  "<<",
  "@",
  "#x",
  "`",
  "'",
  '"',
  "\\",
  "/*",
  "*/",
  "//",
  "<T>",
];
const KEYWORDS = [
  "const",
  "let",
  "var",
  "function",
  "return",
  "if",
  "else",
  "for",
  "of",
  "in",
  "while",
  "do",
  "break",
  "continue",
  "switch",
  "case",
  "new",
  "class",
  "this",
  "super",
  "typeof",
  "instanceof",
  "void",
  "delete",
  "await",
  "yield",
  "async",
  "export",
  "default",
  "import",
  "from",
  "as",
  "type",
  "interface",
  "enum",
  "declare",
  "namespace",
  "null",
  "undefined",
  "true",
  "false",
  "try",
  "throw",
  "satisfies",
  "keyof",
  "readonly",
  "with",
  "debugger",
];

/** Numbers that stress size checks and code generation, as source text. */
export const EXTREME_NUMBERS = [
  "0",
  "-1",
  "(0 / 0)",
  "NaN",
  "Infinity",
  "(1 / 0)",
  "(-1 / 0)",
  "-0",
  "(-0)",
  "1e308",
  "1e309",
  "-1e308",
  "5e-324",
  "2 ** 53",
  "(2 ** 53 + 1)",
  "9007199254740993",
  "2 ** 30",
  "(2 ** 30 + 1)",
  "2 ** 31",
  "2 ** 32",
  "2 ** 20",
  "(2 ** 20 + 1)",
  "4096",
  "4097",
  "0.5",
  "1.5",
  "1e-7",
  "-2147483648",
  "0x7fffffff",
  "1_000_000",
  "0b1",
  "0o7",
  "1e21",
  "123456789012345678901234567890",
  "Math.PI",
  "-(2 ** 53)",
  "65",
  "3",
  "1",
  "2",
];

/** Strings that must never change the meaning of generated code. */
export const HOSTILE_STRINGS = [
  "'",
  '"',
  "`",
  "${x}",
  "${",
  "</script>",
  "\u2028",
  "\u2029",
  "a\u2028b",
  "\u202e",
  "x\u200f",
  "\ufeff",
  "🦕",
  "a\u0000b",
  "\n",
  "a\r\nb",
  "*/",
  "/*",
  "//",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "__metadata__",
  "a.b",
  "a..b",
  ".a",
  "a.",
  "0a",
  "a-b",
  "a b",
  "",
  "\ud800",
  '"; globalThis.pwned = 1; "',
  "'); globalThis.pwned = 1; //",
  "`; globalThis.pwned = 1; `",
  "\\",
  "delete",
  "default",
  "blocks.0.attn.q",
  "é",
  "ｘ",
  "x".repeat(1000),
];

/** Identifier-shaped names that collide with JS internals, globals or DSL names. */
export const HOSTILE_IDENTIFIERS = [
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "undefined",
  "NaN",
  "Infinity",
  "Math",
  "eval",
  "arguments",
  "$",
  "_",
  "ℵ",
  "\\u0078",
  "x\u200d",
  "café",
  "𝑥",
  "B",
  "model",
  "input",
  "globalThis",
  "Deno",
  "self",
  "require",
  "default",
  "delete",
  "let",
  "yield",
  "await",
  "static",
  "implements",
];

const UNICODE = [
  "\u2028",
  "\u2029",
  "\u202e",
  "\u200f",
  "\ufeff",
  "\u0000",
  "🦕",
  "\ud800",
  "\udc00",
  "\u0301",
  "\u00a0",
  "\u3000",
  "\r",
  "\t",
  "\v",
  "\f",
  "\u0085",
  "\u200b",
];

function quote(s: string, rng: Rng): string {
  switch (rng.int(4)) {
    case 0:
      return JSON.stringify(s);
    case 1:
      return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n").replace(/\r/g, "\\r")}'`;
    case 2:
      return `\`${s.replace(/\\/g, "\\\\").replace(/`/g, "\\`").replace(/\$\{/g, "\\${")}\``;
    default:
      return `"${s}"`; // unescaped: may end the literal early
  }
}

function hostileString(rng: Rng): string {
  return rng.chance(0.05) ? "x".repeat(rng.pick([100_000, 600_000])) : rng.pick(HOSTILE_STRINGS);
}

// ── mutators ──────────────────────────────────────────────────────────────

type Mutator = (text: string, rng: Rng, ctx: MutateCtx) => string;

interface MutateCtx {
  readonly seed: SpecSeed;
  readonly corpus: SpecCorpus;
}

function replaceRange(text: string, start: number, end: number, by: string): string {
  return text.slice(0, start) + by + text.slice(end);
}

/** Applies `edit` to 1-4 random tokens chosen by `filter` (re-scanning after each edit). */
function tokenEdits(
  filter: (t: Tok) => boolean,
  edit: (text: string, t: Tok, rng: Rng) => string,
  max = 4,
): Mutator {
  return (text, rng) => {
    const n = rng.between(1, max);
    for (let i = 0; i < n; i++) {
      const toks = scanTokens(text).filter(filter);
      if (toks.length === 0) break;
      text = edit(text, rng.pick(toks), rng);
    }
    return text;
  };
}

const any = () => true;
const isNumber = (t: Tok) => t.kind === ts.SyntaxKind.NumericLiteral;
const isString = (t: Tok) =>
  t.kind === ts.SyntaxKind.StringLiteral || t.kind === ts.SyntaxKind.NoSubstitutionTemplateLiteral;
const isIdent = (t: Tok) => t.kind === ts.SyntaxKind.Identifier;

function lines(text: string): string[] {
  return text.split("\n");
}

/** The relative import path of a repository file from the seed's directory. */
function rel(seed: SpecSeed, target: string): string {
  const r = relative(dirname(seed.path), target).replaceAll("\\", "/");
  return r.startsWith(".") ? r : `./${r}`;
}

const ALIASES = [
  "add",
  "B",
  "blockCausal",
  "concat",
  "conv2d",
  "input",
  "levelIds",
  "linear",
  "model",
  "param",
  "permute",
  "phiIndex",
  "range",
  "reshape",
  "scale",
  "silu",
  "slice",
  "tag",
  "upsampleNearest",
  "varConfig",
];

function aliasImport(seed: SpecSeed): string {
  return `import { ${ALIASES.map((a) => `${a} as __${a}`).join(", ")} } from "${rel(seed, LANG)}";\n`;
}

/** Statements that probe the evaluator's limits (they use the `__`-prefixed DSL imports). */
export const SNIPPETS = [
  'const __s = ((s: string) => { let t = s; for (let i = 0; i < 40; i++) t = t + t; return t; })("ab");',
  'const __t = ((s: string) => { let t = s; for (let i = 0; i < 40; i++) t = `${t}${t}`; return t; })("ab");',
  "const __a = [...__range(2 ** 20), ...__range(2 ** 20)];",
  "const __a1 = [...__range(2 ** 20)];",
  "const __mx = Math.max(...__range(2 ** 20));",
  "const __pu = ((a: number[]) => { a.push(...__range(2 ** 20)); return a.length; })([1]);",
  "const __pd = ((a: number[]) => { for (let i = 0; i < 30; i++) a.push(...a); return a.length; })([1]);",
  // Loops over builtins that touch 2^20 elements per call: work counts by elements, not calls.
  "const __hw = ((a: number[]) => { let n = 0; for (let i = 0; i < 2000; i++) if (a.includes(-1)) n++; return n; })(__range(2 ** 20));",
  "const __hs = ((a: number[]) => { let n = 0; for (let i = 0; i < 2000; i++) n += a.slice(1).length; return n; })(__range(2 ** 20));",
  "const __hp = ((a: number[]) => { let n = 0; for (let i = 0; i < 2000; i++) n += [...a].length; return n; })(__range(2 ** 20));",
  "const __hr = ((k: number) => { let n = 0; for (let i = 0; i < 2000; i++) n += __range(k).length; return n; })(2 ** 20);",
  "const __ph = __phiIndex(2 ** 30);",
  "const __ph2 = __phiIndex(2 ** 20 + 1);",
  "export const { __d } = { __d: 1 };",
  "export const [__e, ...__f] = [1, 2, 3];",
  "const { __g = 5, ...__h } = { __i: 1 };",
  "function __r(n: number): number { return __r(n + 1); }\nconst __rv = __r(0);",
  "const __cy = ((a: unknown[]) => { a.push(a); return a; })([]);",
  "const __dp = ((d: number) => { let a: unknown = 1; for (let i = 0; i < d; i++) a = [a]; return a; })(100000);",
  "const __sp = ((d: number) => { let a: unknown = 1; for (let i = 0; i < d; i++) a = { a }; return a; })(100000);",
  "const __spin = (() => { let i = 0; for (;;) i++; })();",
  "const __big = __range(2 ** 20).map((i) => i * 2).reduce((a, b) => a + b, 0);",
  "const __at = __range(3).at(2 ** 53);",
  "const __sl = __range(10).slice(0 / 0, 1 / 0);",
  "const __in = __range(4).includes(0 / 0);",
  'const __o = { ...{ a: 1 }, ["__proto__"]: 2, constructor: 3, ["toString"]: 4 };',
  "const __ck = { [0 / 0]: 1, [1 / 0]: 2, [-0]: 3, [2 ** 53]: 4 };",
  'const __huge = __input("__huge", [__B, 2 ** 30, 2 ** 30]);',
  'const __up = __upsampleNearest(__input("__u", [__B, 1, 2 ** 15, 2 ** 15]), 2 ** 30);',
  'const __cv = __conv2d(__input("__cv", [__B, 1, 1, 1]), __param("__cw", [1, 1, 3, 3]), __param("__cb", [1]), 0);',
  "const __lv = __levelIds([2 ** 30, 2 ** 30]);",
  "const __bc = __blockCausal(__range(2 ** 20).map((i) => i + 1));",
  'const __tg = __tag(__input("__tg", [__B, 1]), "__proto__");',
  'const __mm = __model({ name: "constructor", entries: { __proto__: { constructor: __input("__q", [1]) } } });',
  'const __mn = __model({ name: "m", outputs: { y: __input("__q", [1]) }, meta: { ["__proto__"]: { a: 1 } } });',
  'const __mo = __model({ name: "m", outputs: { y: __input("__q", [1]) }, meta: { n: 0 / 0, i: -1 / 0 } });',
  'const __vc = __varConfig({ name: "x", depth: 1, width: 8, heads: 2, schedule: __range(2 ** 20).map((i) => i + 1) });',
  'const __vc2 = __varConfig({ name: "x", depth: 2 ** 20, width: 2 ** 20, heads: 1, schedule: [4096], mlpRatio: 5e-324 });',
  'const __rs = __reshape(__input("__rs", [__B, 2 ** 30, 2 ** 30, 2 ** 30]), [__B, 2 ** 30, 2 ** 30, 2 ** 30]);',
  'const __pm = __permute(__input("__pm", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);',
  'const __sl3 = __slice(__input("__sl", [__B, 4]), 2 ** 30, 0, 1);',
  'const __cc = __concat([__input("__cc", [__B, 4])], 2 ** 30);',
  "const __un = undefined?.x;",
  'const __tpl = `${"a"}${1e308}${0 / 0}${-0}`;',
  "const __nn = Math.sqrt(-1) + Math.log(0) + Math.pow(2, 1e308);",
  "const __mi = Math.min();",
  "const __idx = [1, 2, 3][1e308];",
  "const __neg = __range(-1);",
  "const __frac = __range(2.5);",
  'const __sc = __scale(__input("__sc", [__B, 2]), 0 / 0);',
  'const __lin = __linear(__input("__l", [__B, 2]), __param("__proto__", [2, 2]));',
];

/** Imports that must be refused or resolved safely (top level only). */
function importSnippets(seed: SpecSeed): string[] {
  const r = (p: string) => rel(seed, join(ROOT, p));
  return [
    `import { compile as __compile } from "${r("compiler/mod.ts")}";`,
    `import * as __M from "${r("compiler/dsl/mod.ts")}";`,
    `import "${r("compiler/dsl/lib/var.ts")}";`,
    `import { nope as __nope } from "${r("compiler/dsl/lib/var.ts")}";`,
    `import { Tensor as __T2 } from "${r("compiler/dsl/lang.ts")}";`,
    `import { x as __x } from "./does_not_exist.ts";`,
    `import { x as __x } from "./\\u2028x.ts";`,
    `import { x as __x } from "${r("compiler/dsl/lib")}/";`,
    `import { x as __x } from "${r("compiler/dsl/lib")}/.ts";`,
    `import { x as __x } from "${r("README.md")}.ts";`,
    `import { x as __x } from "../../../../../../../../../../etc/passwd.ts";`,
    `import { x as __x } from "${r("compiler/dsl/lib/var.ts")}?x=.ts";`,
    `import __dflt from "${r("tests/specs/tiny_golden.var.ts")}";`,
    `import { OPTIONAL_WEIGHTS as __ow } from "${r("compiler/dsl/lib/var.ts")}";`,
    `import { x as __x } from "./${seed.path.split("/").at(-1)}";`,
    `import { x as __x } from "${r("tests/diagnostics/import_cycle.var.ts")}";`,
  ];
}

function insertAtTop(text: string, stmt: string): string {
  return stmt + "\n" + text;
}

/** Inserts a statement before `export default`, or inside a random function body. */
function insertStatement(text: string, stmt: string, rng: Rng): string {
  const bodies = [...text.matchAll(/\bfunction\b[^{;]*\)[^{;]*\{\n/g)].map((m) => m.index! + m[0].length);
  if (bodies.length > 0 && rng.chance(0.4)) {
    const at = rng.pick(bodies);
    return text.slice(0, at) + stmt + "\n" + text.slice(at);
  }
  const at = text.search(/^export default/m);
  return at < 0 ? text + "\n" + stmt + "\n" : text.slice(0, at) + stmt + "\n" + text.slice(at);
}

function deepConstruct(rng: Rng, text: string): { expr?: string; stmt?: string; kind: string } {
  const d = rng.pick([50, 200, 399, 400, 401, 1000, 2500, 10_000, 30_000]);
  const idents = scanTokens(text).filter(isIdent).map((t) => text.slice(t.start, t.end));
  const callee = idents.length > 0 ? rng.pick(idents) : "f";
  const kind = rng.pick([
    "parens",
    "arrays",
    "calls",
    "unary",
    "negation",
    "objects",
    "arrows",
    "conditionals",
    "templates",
    "binary",
    "spreads",
    "members",
    "types",
    "blocks",
    "ifs",
    "functions",
  ]);
  const rep = (s: string) => s.repeat(d);
  switch (kind) {
    case "parens":
      return { kind, expr: rep("(") + "1" + rep(")") };
    case "arrays":
      return { kind, expr: rep("[") + "1" + rep("]") };
    case "calls":
      return { kind, expr: rep(`${callee}(`) + "1" + rep(")") };
    case "unary":
      return { kind, expr: rep("!") + "1" };
    case "negation":
      return { kind, expr: rep("- ") + "1" };
    case "objects":
      return { kind, expr: rep("{ a: ") + "1" + rep(" }") };
    case "arrows":
      return { kind, expr: rep("() => ") + "1" };
    case "conditionals":
      return { kind, expr: rep("1 ? ") + "1" + rep(" : 0") };
    case "templates":
      return { kind, expr: rep("`${") + "1" + rep("}`") };
    case "binary":
      return { kind, expr: rep("1 + ") + "1" };
    case "spreads":
      return { kind, expr: rep("[...") + "[1]" + rep("]") };
    case "members":
      return { kind, expr: '"abc"' + rep(".length") };
    case "types":
      return { kind, stmt: `const __ty: ${rep("Array<")}number${rep(">")} = 1 as never;` };
    case "blocks":
      return { kind, stmt: `function __blk(): number {\n${rep("{")}${rep("}")}\nreturn 1;\n}\nconst __bv = __blk();` };
    case "ifs":
      return {
        kind,
        stmt: `function __ifs(): number {\n${rep("if (1) ")}return 1;\nreturn 0;\n}\nconst __iv = __ifs();`,
      };
    default:
      return {
        kind,
        stmt: `${rep("function __fn() { return ")}1${rep("; }")}\nconst __fv = __fn();`,
      };
  }
}

const MUTATORS: readonly (readonly [number, string, Mutator])[] = [
  [
    10,
    "token-replace",
    tokenEdits(any, (text, t, rng) => {
      const pool = scanTokens(text);
      const by = rng.chance(0.5) && pool.length > 0
        ? text.slice(...(({ start, end }) => [start, end] as const)(rng.pick(pool)))
        : rng.pick(rng.chance(0.5) ? PUNCTUATION : KEYWORDS);
      return replaceRange(text, t.start, t.end, by);
    }),
  ],
  [8, "token-delete", tokenEdits(any, (text, t) => replaceRange(text, t.start, t.end, ""))],
  [
    6,
    "token-duplicate",
    tokenEdits(any, (text, t) => {
      const s = text.slice(t.start, t.end);
      return replaceRange(text, t.start, t.end, `${s} ${s}`);
    }),
  ],
  [3, "token-swap", (text, rng) => {
    const toks = scanTokens(text);
    if (toks.length < 2) return text;
    let [a, b] = [rng.pick(toks), rng.pick(toks)];
    if (a.start > b.start) [a, b] = [b, a];
    if (a.end > b.start) return text;
    return text.slice(0, a.start) + text.slice(b.start, b.end) + text.slice(a.end, b.start) +
      text.slice(a.start, a.end) + text.slice(b.end);
  }],
  [
    12,
    "number-extreme",
    tokenEdits(isNumber, (text, t, rng) => replaceRange(text, t.start, t.end, rng.pick(EXTREME_NUMBERS))),
  ],
  [
    8,
    "string-hostile",
    tokenEdits(isString, (text, t, rng) => replaceRange(text, t.start, t.end, quote(hostileString(rng), rng)), 2),
  ],
  [
    8,
    "name-hostile",
    tokenEdits(isIdent, (text, t, rng) => {
      if (rng.chance(0.3)) return replaceRange(text, t.start, t.end, `[${quote(hostileString(rng), rng)}]`);
      return replaceRange(text, t.start, t.end, rng.pick(HOSTILE_IDENTIFIERS));
    }, 2),
  ],
  [5, "line-delete", (text, rng) => {
    const ls = lines(text);
    const n = rng.between(1, 3);
    for (let i = 0; i < n && ls.length > 1; i++) ls.splice(rng.int(ls.length), rng.between(1, 2));
    return ls.join("\n");
  }],
  [4, "line-duplicate", (text, rng) => {
    const ls = lines(text);
    const i = rng.int(ls.length);
    ls.splice(rng.int(ls.length + 1), 0, ...Array<string>(rng.pick([1, 1, 2, 50])).fill(ls[i]!));
    return ls.join("\n");
  }],
  [2, "line-swap", (text, rng) => {
    const ls = lines(text);
    const [i, j] = [rng.int(ls.length), rng.int(ls.length)];
    [ls[i], ls[j]] = [ls[j]!, ls[i]!];
    return ls.join("\n");
  }],
  [5, "unicode-insert", (text, rng) => {
    const n = rng.between(1, 5);
    for (let i = 0; i < n; i++) {
      const at = rng.int(text.length + 1);
      text = text.slice(0, at) + rng.pick(UNICODE) + text.slice(at);
    }
    return text;
  }],
  [4, "deep-nesting", (text, rng) => {
    const c = deepConstruct(rng, text);
    if (c.stmt) return insertStatement(text, c.stmt, rng);
    const toks = scanTokens(text).filter((t) => isNumber(t) || isIdent(t));
    if (toks.length > 0 && rng.chance(0.5)) {
      const t = rng.pick(toks);
      return replaceRange(text, t.start, t.end, c.expr!);
    }
    return insertStatement(text, `export const __deep = ${c.expr};`, rng);
  }],
  [4, "splice", (text, rng, ctx) => {
    const other = rng.pick(ctx.corpus.seeds);
    const src = lines(other.text);
    const ls = lines(text);
    const start = rng.int(src.length);
    ls.splice(rng.int(ls.length + 1), 0, ...src.slice(start, start + rng.between(1, 6)));
    return ls.join("\n");
  }],
  [8, "snippet", (text, rng, ctx) => {
    const withImports = insertAtTop(text, aliasImport(ctx.seed));
    if (rng.chance(0.2)) return insertAtTop(withImports, rng.pick(importSnippets(ctx.seed)));
    return insertStatement(withImports, rng.pick(SNIPPETS), rng);
  }],
];

/** File names for on-disk mutants that must not break generated code (spans name their file in comments). */
const HOSTILE_FILE_NAMES = [
  "x\u2028globalThis.pwned=1;var q=0?q.var.ts",
  "x\u2029y.var.ts",
  "x\ny.var.ts",
  "x\ry.var.ts",
  "x*y.var.ts",
  'x"y.var.ts',
  "x`${y}.var.ts",
  "x\u202ey.var.ts",
  "🦕.var.ts",
];

/** Mutation classes, for reports. */
export const SPEC_CLASSES = [...MUTATORS.map(([, name]) => name), "huge-file", "random-bytes"];

/** Builds the mutant of one case from its generator. */
export function makeSpecMutant(corpus: SpecCorpus, rng: Rng): SpecMutant {
  const seed = rng.weighted(corpus.seeds.map((s) => [s.weight, s] as const));
  const lower = rng.chance(seed.lowerRate);
  const emit = lower && rng.chance(0.3);
  const cls = rng.weighted<string>([...MUTATORS.map(([w, name]) => [w, name] as const), [1.5, "huge-file"], [
    2.5,
    "random-bytes",
  ]]);
  const diskName = rng.chance(0.1) ? rng.pick(HOSTILE_FILE_NAMES) : undefined;
  const base = { cls, seed: seed.name, path: seed.path, lower, emit, ...(diskName ? { diskName } : {}) };
  if (cls === "huge-file") return { ...base, ...hugeFile(seed, rng) };
  if (cls === "random-bytes") return { ...base, ...randomBytes(seed, rng) };
  const mutate = MUTATORS.find(([, name]) => name === cls)![2];
  let text = mutate(seed.text, rng, { seed, corpus });
  if (rng.chance(0.15)) {
    const [, , second] = rng.weighted(MUTATORS.map((m) => [m[0], m] as const));
    text = second(text, rng, { seed, corpus });
  }
  return { ...base, text, onDisk: rng.chance(0.05) };
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

function hugeFile(seed: SpecSeed, rng: Rng): { text: string; onDisk: boolean } {
  const over = rng.chance(0.5);
  const target = over ? MAX_SPEC_BYTES + rng.pick([1, 2, 7, 64, 4096]) : MAX_SPEC_BYTES - rng.pick([0, 1, 64, 4096]);
  const have = utf8Length(seed.text);
  const room = Math.max(0, target - have);
  let pad: string;
  switch (rng.int(5)) {
    case 0: // a comment
      pad = "\n//" + "x".repeat(Math.max(0, room - 3));
      break;
    case 1: // whitespace
      pad = " ".repeat(room);
      break;
    case 2: { // multi-byte characters: fewer UTF-16 units than bytes
      const n = Math.floor(room / 2);
      pad = "\n//" + "é".repeat(Math.max(0, n - 2)) + "x".repeat(Math.max(0, room - 3 - 2 * Math.max(0, n - 2)));
      break;
    }
    case 3: { // many evaluated declarations
      const parts: string[] = [];
      let size = 1;
      for (let i = 0; size < room; i++) {
        const line = `const __p${i} = ${i};\n`;
        if (size + line.length > room) break;
        parts.push(line);
        size += line.length;
      }
      pad = "\n" + parts.join("") + " ".repeat(Math.max(0, room - size));
      break;
    }
    default: { // one long string
      const inner = Math.max(0, room - 24);
      pad = `\nconst __longString = "${"y".repeat(inner)}";`;
      pad += " ".repeat(Math.max(0, room - utf8Length(pad)));
    }
  }
  return { text: seed.text + pad, onDisk: rng.chance(0.5) };
}

function randomBytes(seed: SpecSeed, rng: Rng): { text: string; bytes?: Uint8Array; onDisk: boolean } {
  let bytes: Uint8Array;
  if (rng.chance(0.3)) bytes = rng.bytes(rng.pick([0, 1, 16, 1000, 5000]));
  else {
    const src = new TextEncoder().encode(seed.text);
    const at = rng.int(src.length + 1), len = rng.between(1, 64);
    const junk = rng.bytes(len);
    bytes = new Uint8Array(src.length + len);
    bytes.set(src.subarray(0, at));
    bytes.set(junk, at);
    bytes.set(src.subarray(at), at + len);
  }
  const text = new TextDecoder().decode(bytes);
  return rng.chance(0.5) ? { text, bytes, onDisk: true } : { text, onDisk: false };
}

// ── running a case and judging it ────────────────────────────────────────

/** Where a relative import of the seed's directory points from another directory. */
function relocateImports(text: string, fromDir: string, toDir: string): string {
  return text.replace(/(\bfrom\s*|\bimport\s*)(["'])(\.[^"'\n]*)\2/g, (_m, kw: string, q: string, spec: string) => {
    let r = relative(toDir, resolve(fromDir, spec)).replaceAll("\\", "/");
    if (!r.startsWith(".")) r = `./${r}`;
    return `${kw}${q}${r}${q}`;
  });
}

function displayPath(path: string): string {
  const r = relative(Deno.cwd(), path);
  return r.startsWith("..") ? path : r;
}

const fileTexts = new Map<string, string | undefined>();

function textOf(file: string): string | undefined {
  if (!fileTexts.has(file)) {
    let text: string | undefined;
    try {
      text = Deno.readTextFileSync(resolve(Deno.cwd(), file));
    } catch {
      text = undefined;
    }
    fileTexts.set(file, text);
  }
  return fileTexts.get(file);
}

/** What is wrong with a span (undefined when it points at a real line and column of a real file). */
function badSpan(span: SourceSpan, files: ReadonlyMap<string, string>): string | undefined {
  if (typeof span.file !== "string" || span.file === "") return "a span without a file";
  if (!Number.isInteger(span.line) || span.line < 1 || !Number.isInteger(span.column) || span.column < 1) {
    return `a span at ${span.file}:${span.line}:${span.column}`;
  }
  if (!(Number.isInteger(span.length) && span.length >= 0)) return `a span of length ${span.length}`;
  const text = files.get(span.file) ?? textOf(span.file);
  if (text === undefined) return `a span in ${span.file}, which is not a file`;
  const ls = text.split("\n");
  if (span.line > ls.length) return `line ${span.line} of ${span.file}, which has ${ls.length} lines`;
  const lineText = ls[span.line - 1]!.replace(/\r$/, "");
  if (span.column > lineText.length + 1) return `column ${span.column} of a ${lineText.length}-character line`;
  if (span.lineText !== lineText) {
    return `line text ${JSON.stringify(span.lineText.slice(0, 60))} is not line ${span.line}`;
  }
  return undefined;
}

function badDiagnostic(d: Diagnostic, files: ReadonlyMap<string, string>): string | undefined {
  if (!/^[a-z][a-z0-9-]*$/.test(d.id)) return `diagnostic id ${JSON.stringify(d.id)}`;
  if (!d.message) return `diagnostic ${d.id} without a message`;
  if (!d.span) return `diagnostic ${d.id} has no span: ${d.message.slice(0, 200)}`;
  const bad = badSpan(d.span, files);
  if (bad) return `diagnostic ${d.id} has ${bad}: ${d.message.slice(0, 200)}`;
  for (const n of d.notes) {
    const b = n.span && badSpan(n.span, files);
    if (b) return `a note of diagnostic ${d.id} has ${b}`;
  }
  return undefined;
}

/** Metadata the generated module would not reproduce (it is emitted as a JS object literal). */
function badMeta(v: MetaValue, path: string): string | undefined {
  if (typeof v === "number") return Number.isFinite(v) ? undefined : `metadata ${path} is ${v}`;
  if (typeof v !== "object" || v === null) return undefined;
  const entries: [string, MetaValue][] = Array.isArray(v)
    ? v.map((x, i) => [String(i), x])
    : Object.entries(v as Record<string, MetaValue>);
  for (const [k, x] of entries) {
    if (!Array.isArray(v) && k === "__proto__") return `metadata key "__proto__" at ${path}`;
    const bad = badMeta(x, `${path}.${k}`);
    if (bad) return bad;
  }
  return undefined;
}

/** Names that reach generated object literals as keys. */
function badNames(module: IrModule): string | undefined {
  for (const [entry, outs] of Object.entries(module.entries)) {
    if (entry === "__proto__") return `entry named "__proto__"`;
    if (Object.keys(outs).includes("__proto__")) return `output named "__proto__" in entry "${entry}"`;
  }
  if (Object.keys(module.entries).length === 0) return "a module without entries";
  return badMeta(module.meta as MetaValue, "meta");
}

/** IR facts a successful lowering must establish; violations are reported as suspects. */
function badShapes(module: IrModule): string | undefined {
  for (const n of module.nodes) {
    for (const d of n.type?.shape ?? []) {
      if (d !== "B" && !(Number.isSafeInteger(d) && d >= 1)) {
        return `node %${n.id} (${n.op}) at ${n.span.file}:${n.span.line}:${n.span.column} has shape [${
          n.type!.shape.join(", ")
        }]`;
      }
    }
  }
  return undefined;
}

/** How a spec case ended, with a short detail (diagnostic ids, or what went wrong). */
export interface SpecVerdict {
  readonly outcome: Outcome;
  readonly detail: string;
}

/** Characters that would end a `//` comment or a line of generated code without being a plain "\n". */
const LINE_BREAKS = /[\r\u2028\u2029]/;

/** What is wrong with generated source: a syntax error, or a line break other than "\n" outside string literals. */
function badSource(source: string): string | undefined {
  const sf = ts.createSourceFile("model.ts", source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const syntax = (sf as unknown as { parseDiagnostics?: ts.Diagnostic[] }).parseDiagnostics ?? [];
  if (syntax.length > 0) {
    return `generated source does not parse: ${ts.flattenDiagnosticMessageText(syntax[0]!.messageText, " ")}`;
  }
  const sc = ts.createScanner(ts.ScriptTarget.Latest, false, ts.LanguageVariant.Standard, source);
  for (let k = sc.scan(); k !== ts.SyntaxKind.EndOfFileToken; k = sc.scan()) {
    if (k === ts.SyntaxKind.StringLiteral || k === ts.SyntaxKind.NoSubstitutionTemplateLiteral) continue;
    const text = sc.getTokenText();
    if (LINE_BREAKS.test(text) && !(k === ts.SyntaxKind.NewLineTrivia && text === "\r\n")) {
      return `generated source has a raw ${JSON.stringify(text.match(LINE_BREAKS)![0])} in ${
        ts.SyntaxKind[k]
      } at ${sc.getTokenStart()}: ${JSON.stringify(text.slice(0, 80))}`;
    }
  }
  return undefined;
}

/** Runs one mutant through the front end (and the pipeline when `lower`) and judges the result. */
export async function runSpecMutant(m: SpecMutant, corpus: SpecCorpus, index: number): Promise<SpecVerdict> {
  let path = m.path;
  let text = m.text;
  let written: string | undefined;
  if (m.onDisk) {
    Deno.mkdirSync(corpus.tmpDir, { recursive: true });
    written = join(corpus.tmpDir, `case_${index}_${m.diskName ?? m.path.split("/").at(-1)}`);
    if (m.bytes) {
      Deno.writeFileSync(written, m.bytes);
    } else {
      text = relocateImports(text, dirname(m.path), corpus.tmpDir);
      Deno.writeTextFileSync(written, text);
    }
    text = Deno.readTextFileSync(written); // what the front end reads (lone surrogates were written as U+FFFD)
    path = written;
  }
  const files = new Map([[displayPath(resolve(path)), text]]);
  const bytes = m.bytes ? m.bytes.length : utf8Length(text);
  try {
    const module = m.onDisk ? parseSpec(path) : parseSpec(path, text);
    if (bytes > MAX_SPEC_BYTES) {
      return { outcome: "failure", detail: `accepted a spec of ${bytes} bytes (limit 1 MiB)` };
    }
    const names = badNames(module);
    if (names) return { outcome: "failure", detail: `accepted ${names}` };
    if (!m.lower) return { outcome: "ok", detail: "parsed" };
    const lowered = runPipeline(module, defaultPipeline, resolveOptions({}));
    const shapes = badShapes(lowered);
    if (shapes) return { outcome: "suspect", detail: shapes };
    if (!m.emit) return { outcome: "ok", detail: "lowered" };
    const compiled = await compile(path, { minify: false }, m.onDisk ? {} : { text });
    const source = badSource(compiled.emitted.source);
    return source ? { outcome: "failure", detail: source } : { outcome: "ok", detail: "emitted" };
  } catch (e) {
    if (!(e instanceof CompileError)) return { outcome: "failure", detail: describeError(e) };
    if (e.diagnostics.length === 0) return { outcome: "failure", detail: "CompileError without diagnostics" };
    for (const d of e.diagnostics) {
      const bad = badDiagnostic(d, files);
      if (bad) return { outcome: "failure", detail: bad };
    }
    try {
      formatDiagnostics(e.diagnostics);
    } catch (f) {
      return { outcome: "failure", detail: `formatting diagnostics threw ${describeError(f)}` };
    }
    return { outcome: "rejected", detail: [...new Set(e.diagnostics.map((d) => d.id))].join(",") };
  } finally {
    if (written) Deno.removeSync(written);
  }
}

/** The mutant as a file to keep in `dir` (its relative imports rewritten to work from there). */
export function specArtifact(m: SpecMutant, dir: string): Artifact {
  if (m.bytes) return { ext: "var.ts.bin", bytes: m.bytes };
  return { ext: "var.ts", text: relocateImports(m.text, dirname(m.path), resolve(dir)) };
}
