/**
 * @file Front end: reads a `.var.ts` spec with ts-morph, without executing it, and builds the IR.
 *
 * The only code that walks TypeScript syntax. A spec module may contain imports
 * of other DSL modules, function declarations, `const` declarations, types,
 * and `export default model(...)`; anything that would run at top level is an
 * error, and nothing outside the DSL can be imported.
 * @module
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Node as TsNode, Project, type SourceFile, ts } from "ts-morph";
import { CompileError, type Diagnostic, error, type SourceSpan } from "../diagnostics.ts";
import type { IrModule, MetaValue } from "../ir/node.ts";
import { makeBuiltins } from "./builtins.ts";
import { Env } from "./env.ts";
import { GraphBuilder } from "./graph.ts";
import { Evaluator } from "./interp.ts";
import { spanAt, spanOf } from "./spans.ts";
import { Builtin, Closure, describe, fail, ModelVal, ObjVal, quote, SpecError, type Value } from "./values.ts";

/** Absolute path of the DSL declarations; importing it binds the builtins. */
export const LANG_PATH = fileURLToPath(new URL("./lang.ts", import.meta.url));
const DSL_DIR = fileURLToPath(new URL("./", import.meta.url));
const COMPILER_DIR = fileURLToPath(new URL("../", import.meta.url));
export const MAX_SPEC_BYTES = 1 << 20;

/** Reads a spec file and returns its IR (untyped; `infer-shapes` types it). Throws CompileError. */
export function parseSpec(path: string, text?: string): IrModule {
  const reader = new SpecReader();
  try {
    const file = resolve(path);
    const exports = reader.load(file, text);
    const model = exports.get("default");
    if (!(model instanceof ModelVal)) {
      fail(
        "no-default-export",
        `The spec must end with "export default model(...)" (or a preset returning one), got ${describe(model)}`,
        reader.defaultSpan.get(file) ?? spanAt(file, reader.text(file), 0),
      );
    }
    return toModule(model, reader.graph);
  } catch (e) {
    if (e instanceof SpecError) throw new CompileError(e.diagnostics);
    if (e instanceof RangeError && /call stack/i.test(e.message)) {
      const file = resolve(path);
      throw new CompileError([
        error("nesting-limit", "The spec nests too deeply to be read", spanAt(file, reader.text(file), 0), [
          { message: "Split deeply nested expressions into named consts" },
        ]),
      ]);
    }
    throw e;
  }
}

/** Observers of the files specs read, registered by `trackSpecReads`. */
const readObservers = new Set<(file: string) => void>();

/**
 * Runs `work` and calls `onRead` with the absolute path of each file that spec parses started during
 * `work` read: the spec, then every DSL module it imports (e.g. a bundler's watch list). Parsing is
 * synchronous, so `work` may be `() => compile(path)`: the spec is read before its first await.
 */
export function trackSpecReads<T>(work: () => T, onRead: (file: string) => void): T {
  readObservers.add(onRead);
  try {
    return work();
  } finally {
    readObservers.delete(onRead);
  }
}

class SpecReader {
  readonly #ev = new Evaluator();
  readonly graph = new GraphBuilder(() => this.#ev.trace());
  readonly #project = new Project({ useInMemoryFileSystem: true, compilerOptions: { allowJs: false } });
  /** Where each module's `export default` expression is. */
  readonly defaultSpan = new Map<string, SourceSpan>();
  readonly #builtins = makeBuiltins(this.graph);
  readonly #globals = globalScope();
  readonly #loaded = new Map<string, Map<string, Value> | "loading">();
  readonly #texts = new Map<string, string>();

  text(file: string): string {
    return this.#texts.get(file) ?? "";
  }

  /** Loads a DSL module (cached) and returns its exports; `from` is the import that asked for it. */
  load(file: string, text?: string, from?: SourceSpan): Map<string, Value> {
    const cached = this.#loaded.get(file);
    if (cached === "loading") {
      fail("bad-import", `Cannot import ${file}: it is already being loaded (an import cycle)`, from, [
        { message: "DSL modules must not import each other in a cycle" },
      ]);
    }
    if (cached) return cached;
    this.#loaded.set(file, "loading");
    const sf = this.#parse(file, text, from);
    const exports = this.#run(sf);
    this.#loaded.set(file, exports);
    return exports;
  }

  #parse(file: string, text?: string, from?: SourceSpan): SourceFile {
    for (const observe of readObservers) observe(file);
    // The spec itself has no importer to point at: its problems are reported at its first line.
    const at = () => from ?? spanAt(file, text ?? firstLine(file), 0);
    if (unsafePath(file)) {
      fail(
        "bad-import",
        `Cannot read spec ${quote(file, 400)}: its path contains a control or line-break character`,
        at(),
        [
          { message: "Paths reach comments of the generated code; rename the file" },
        ],
      );
    }
    let source = text;
    if (source === undefined) {
      try {
        const read = readRegularFileSync(file, MAX_SPEC_BYTES);
        if (typeof read === "number") tooLarge(file, read, at());
        source = read;
      } catch (e) {
        if (e instanceof SpecError) throw e;
        throw new SpecError([error("cannot-read", `Cannot read spec ${file}: ${(e as Error).message}`, at())]);
      }
    } else if (source.length > MAX_SPEC_BYTES / 3) {
      const size = utf8Length(source);
      if (size > MAX_SPEC_BYTES) tooLarge(file, size, at());
    }
    this.#texts.set(file, source);
    const sf = this.#project.createSourceFile(file, source, { overwrite: true });
    const syntax =
      (sf.compilerNode as unknown as { parseDiagnostics?: ts.DiagnosticWithLocation[] }).parseDiagnostics ?? [];
    if (syntax.length > 0) {
      throw new SpecError(
        syntax.slice(0, 10).map((d) =>
          error(
            "syntax-error",
            ts.flattenDiagnosticMessageText(d.messageText, "\n"),
            spanAt(file, source!, d.start, d.length),
          )
        ),
      );
    }
    return sf;
  }

  /** Binds imports and functions, evaluates consts in order, collects every top-level problem. */
  #run(sf: SourceFile): Map<string, Value> {
    const env = new Env(this.#globals);
    const exports = new Map<string, Value>();
    const problems: Diagnostic[] = [];
    const statements = sf.getStatements();
    for (const s of statements) {
      if (TsNode.isImportDeclaration(s)) this.#import(s, sf, env);
      else if (TsNode.isFunctionDeclaration(s) && s.getName()) {
        const name = s.getName()!;
        const fn = new Closure(name, s, env);
        env.define(name, fn, false, spanOf(s));
        if (s.hasExportKeyword()) exports.set(name, fn);
      } else if (!isDeclaration(s)) {
        problems.push(
          error("top-level-code", `Cannot run code at the top level of a spec (${s.getKindName()})`, spanOf(s), [
            { message: "The compiler reads specs and never executes them: move this into a function, or remove it" },
          ]),
        );
      }
    }
    if (problems.length > 0) throw new SpecError(problems);
    for (const s of statements) {
      if (TsNode.isVariableStatement(s)) {
        if (s.getDeclarationKind() !== "const") {
          fail("top-level-code", "Top-level bindings of a spec must be const", spanOf(s));
        }
        for (const d of s.getDeclarations()) {
          this.#ev.declare(d, env, false);
          if (!s.hasExportKeyword()) continue;
          for (const name of boundNames(d.getNameNode())) exports.set(name, env.lookup(name)!.value);
        }
      } else if (TsNode.isExportAssignment(s)) {
        this.defaultSpan.set(sf.getFilePath(), spanOf(s.getExpression()));
        exports.set("default", this.#ev.expr(s.getExpression(), env));
      }
    }
    return exports;
  }

  #import(s: TsNode, sf: SourceFile, env: Env): void {
    const imp = s.asKindOrThrow(ts.SyntaxKind.ImportDeclaration);
    const specifier = imp.compilerNode.moduleSpecifier;
    if (!ts.isStringLiteral(specifier)) {
      fail("bad-import", "Cannot import from a computed module name: write the path as a string literal", spanOf(imp), [
        { message: 'For example: import { varModel } from "../compiler/dsl/lib/var.ts";' },
      ]);
    }
    const spec = specifier.text;
    if (!spec.startsWith(".") || !spec.endsWith(".ts")) {
      fail(
        "bad-import",
        `Cannot import "${spec}": specs may import only DSL modules (relative .ts paths)`,
        spanOf(imp.getModuleSpecifier()),
        [
          { message: "Import the DSL from compiler/dsl/lang.ts and blocks from compiler/dsl/lib/*.ts" },
        ],
      );
    }
    if (imp.isTypeOnly()) return;
    const target = resolve(dirname(sf.getFilePath()), spec);
    const at = spanOf(imp.getModuleSpecifier());
    if (target.startsWith(COMPILER_DIR) && !target.startsWith(DSL_DIR)) {
      fail("bad-import", `Cannot import "${spec}": it is compiler code, not a DSL module`, at, [
        { message: "Specs import compiler/dsl/lang.ts, the blocks of compiler/dsl/lib/, and their own DSL modules" },
      ]);
    }
    const exports = target === LANG_PATH ? new Map(Object.entries(this.#builtins)) : this.#loadImported(target, at);
    const ns = imp.getNamespaceImport();
    if (ns) env.define(ns.getText(), new ObjVal(new Map(exports), undefined), false, spanOf(ns));
    for (const named of imp.getNamedImports()) {
      if (named.isTypeOnly()) continue;
      const name = named.getName();
      const v = exports.get(name);
      const local = named.getAliasNode()?.getText() ?? name;
      if (v === undefined && !isTypeExport(target, name, this)) {
        fail("unknown-name", `Module "${spec}" has no export "${name}"`, spanOf(named));
      }
      env.define(local, v, false, spanOf(named));
    }
  }

  /** Loads an imported module; its errors also point at the import that brought it in. */
  #loadImported(target: string, at: SourceSpan): Map<string, Value> {
    try {
      return this.load(target, undefined, at);
    } catch (e) {
      if (!(e instanceof SpecError)) throw e;
      const note = { message: "imported here", span: at };
      throw new SpecError(
        e.diagnostics.map((d) =>
          d.span === at || d.notes.some((n) => n.span === at) ? d : { ...d, notes: [...d.notes, note] }
        ),
      );
    }
  }

  /** True when `name` is a type (interface/type alias) exported by that module. */
  hasTypeExport(file: string, name: string): boolean {
    const sf = this.#project.getSourceFile(file) ?? this.#parse(file);
    return sf.getInterface(name) !== undefined || sf.getTypeAlias(name) !== undefined;
  }
}

/** Globals a spec may use besides its imports: `Math`'s pure functions and constants. */
function globalScope(): Env {
  const env = new Env();
  const num = (name: string, f: (...xs: number[]) => number) =>
    new Builtin(name, (args, at) => {
      args.forEach((a, i) => {
        if (typeof a !== "number") {
          fail(
            "bad-argument",
            `Argument ${i + 1} of "Math.${name}" must be a number, got ${describe(a)}`,
            at.argSpans[i] ?? at.span,
          );
        }
      });
      const xs = args as number[];
      // min/max fold instead of spreading: a spread of a million numbers overflows the stack.
      if (name === "min" || name === "max") return xs.reduce((a, x) => f(a, x), name === "min" ? Infinity : -Infinity);
      return f(xs[0]!, xs[1]!);
    });
  const fns = ["sqrt", "log", "exp", "min", "max", "floor", "ceil", "round", "abs", "pow", "trunc"] as const;
  const math = new ObjVal(
    new Map<string, Value>(fns.map((f) => [f, num(f, Math[f] as (...xs: number[]) => number)])),
    undefined,
  );
  for (const k of ["PI", "E", "LN2", "LN10"] as const) math.props.set(k, Math[k]);
  env.define("Math", math, false, spanAt("<globals>", "", 0));
  return env;
}

/** True when a path holds a control or line-break character: it could end a comment of the generated code. */
function unsafePath(path: string): boolean {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x85 || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
}

/** The first line of a regular file (up to 4 KiB), for spans at the top of an unreadable spec; "" otherwise. */
function firstLine(file: string): string {
  try {
    if (!Deno.statSync(file).isFile) return ""; // opening a FIFO would wait for a writer
    const f = Deno.openSync(file);
    try {
      const buf = new Uint8Array(4096);
      const n = f.readSync(buf) ?? 0;
      return new TextDecoder().decode(buf.subarray(0, n)).split("\n")[0]!;
    } finally {
      f.close();
    }
  } catch {
    return "";
  }
}

/** A file-system object that is not a regular file (a directory, device, FIFO or socket). */
export class NotRegularFileError extends Error {
  override name = "NotRegularFileError";
}

/**
 * The text of a regular file of at most `max` bytes, or its size when larger. Devices, FIFOs and
 * sockets (also behind symlinks) are refused before they are opened, and the read stops at the size
 * checked, so a file that grows while being read cannot make it unbounded.
 */
export function readRegularFileSync(file: string, max: number): string | number {
  const info = Deno.statSync(file);
  if (!info.isFile) throw new NotRegularFileError("not a regular file (a directory, device, FIFO or socket)");
  if (info.size > max) return info.size;
  using f = Deno.openSync(file);
  const buf = new Uint8Array(info.size + 1);
  let n = 0;
  for (let got = 0; n < buf.length && (got = f.readSync(buf.subarray(n)) ?? 0) > 0;) n += got;
  if (n > info.size) throw new NotRegularFileError(`it grew while being read (stat said ${info.size} bytes)`);
  return new TextDecoder().decode(buf.subarray(0, n));
}

function tooLarge(file: string, size: number, at: SourceSpan): never {
  fail("spec-too-large", `Spec ${file} is ${size} bytes, larger than the limit of ${MAX_SPEC_BYTES} bytes`, at, [
    { message: "Split the spec into DSL modules and import them" },
  ]);
}

/** UTF-8 byte length of a string, without encoding it. */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** The names a declaration binds: an identifier, or every name of a destructuring pattern. */
function boundNames(n: TsNode): string[] {
  if (TsNode.isIdentifier(n)) return [n.getText()];
  if (TsNode.isObjectBindingPattern(n) || TsNode.isArrayBindingPattern(n)) {
    return n.getElements().flatMap((el) => (TsNode.isBindingElement(el) ? boundNames(el.getNameNode()) : []));
  }
  return [];
}

function isTypeExport(file: string, name: string, reader: SpecReader): boolean {
  return reader.hasTypeExport(file, name);
}

function isDeclaration(s: TsNode): boolean {
  return TsNode.isVariableStatement(s) || TsNode.isExportAssignment(s) || TsNode.isInterfaceDeclaration(s) ||
    TsNode.isTypeAliasDeclaration(s) || TsNode.isEmptyStatement(s) || TsNode.isImportDeclaration(s) ||
    TsNode.isFunctionDeclaration(s);
}

function toModule(model: ModelVal, graph: GraphBuilder): IrModule {
  return {
    name: model.name,
    nodes: [...graph.nodes],
    entries: Object.fromEntries(
      [...model.entries].map(([e, outs]) => [e, Object.fromEntries([...outs].map(([k, t]) => [k, t.id]))]),
    ),
    meta: toMeta(model.meta, model.meta.span ?? model.span) as Record<string, MetaValue>,
    optionalWeights: model.optionalWeights,
    span: model.span,
  };
}

/** Metadata deeper than this is refused (it also stops a list that contains itself). */
const META_DEPTH = 32;
/** Most values and bytes of text in a model's metadata (stored in the generated module). */
const META_NODES = 100_000, META_BYTES = 1 << 20;

/**
 * Model metadata as JSON-like data. The generated module stores it as a JS object literal, so it
 * must survive that: finite numbers only, and no "__proto__" key (it would set the prototype).
 */
function toMeta(
  v: Value,
  span: SourceSpan,
  depth = 0,
  budget = { nodes: 0, bytes: 0 },
): MetaValue | undefined {
  // Shared references make a small spec a huge tree (a list holding itself twice, 30 times over):
  // count nodes and string bytes as they are visited, not just the depth.
  budget.nodes++, budget.bytes += typeof v === "string" ? v.length : 8;
  if (budget.nodes > META_NODES || budget.bytes > META_BYTES) {
    fail(
      "bad-argument",
      `Model metadata is too large: more than ${META_NODES} values or ${META_BYTES} bytes of text`,
      span,
      [{ message: "Metadata is a small tree of numbers, strings, booleans, lists and objects" }],
    );
  }
  if (depth > META_DEPTH) {
    fail("bad-argument", `Model metadata nests deeper than ${META_DEPTH} levels (or contains itself)`, span, [
      { message: "Metadata is a small tree of numbers, strings, booleans, lists and objects" },
    ]);
  }
  if (typeof v === "number") {
    if (!Number.isFinite(v)) {
      fail("bad-argument", `Model metadata cannot hold ${describe(v)}: it is stored as JSON, which has no ${v}`, span, [
        { message: 'Store a finite number, or a string such as "Infinity"' },
      ]);
    }
    return v;
  }
  if (typeof v === "string" || typeof v === "boolean") return v;
  if (Array.isArray(v)) return v.map((x) => toMeta(x, span, depth + 1, budget)).filter((x) => x !== undefined);
  if (v instanceof ObjVal) {
    const out: Record<string, MetaValue> = {};
    for (const [k, x] of v.props) {
      const at = v.spans.get(k) ?? span;
      if (k === "__proto__") {
        fail("unsafe-name", `Model metadata cannot have the key "__proto__"`, at, [
          { message: "In the generated module it would set the object's prototype instead of a field; rename it" },
        ]);
      }
      const m = toMeta(x, at, depth + 1, budget);
      if (m !== undefined) out[k] = m;
    }
    return out;
  }
  if (v instanceof Closure || v instanceof Builtin || v === undefined) return undefined;
  fail("bad-argument", `Model metadata cannot hold ${describe(v)}`, span);
}
