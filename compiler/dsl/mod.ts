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
import { Builtin, Closure, describe, fail, ModelVal, ObjVal, SpecError, type Value } from "./values.ts";

/** Absolute path of the DSL declarations; importing it binds the builtins. */
export const LANG_PATH = fileURLToPath(new URL("./lang.ts", import.meta.url));
const DSL_DIR = fileURLToPath(new URL("./", import.meta.url));
const COMPILER_DIR = fileURLToPath(new URL("../", import.meta.url));
const MAX_SPEC_BYTES = 1 << 20;

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
    let source = text;
    if (source === undefined) {
      try {
        if (Deno.statSync(file).size > MAX_SPEC_BYTES) {
          throw new SpecError([
            error("spec-too-large", `Spec ${file} is larger than ${MAX_SPEC_BYTES} bytes`, from),
          ]);
        }
        source = Deno.readTextFileSync(file);
      } catch (e) {
        if (e instanceof SpecError) throw e;
        throw new SpecError([error("cannot-read", `Cannot read spec ${file}: ${(e as Error).message}`, from)]);
      }
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
          if (s.hasExportKeyword()) exports.set(d.getName(), env.lookup(d.getName())!.value);
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
    const spec = imp.getModuleSpecifierValue();
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
      return f(...(args as number[]));
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
    meta: toMeta(model.meta, model) as Record<string, MetaValue>,
    optionalWeights: model.optionalWeights,
    span: model.span,
  };
}

function toMeta(v: Value, model: ModelVal): MetaValue | undefined {
  if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") return v;
  if (Array.isArray(v)) return v.map((x) => toMeta(x, model)).filter((x) => x !== undefined);
  if (v instanceof ObjVal) {
    const out: Record<string, MetaValue> = {};
    for (const [k, x] of v.props) {
      const m = toMeta(x, model);
      if (m !== undefined) out[k] = m;
    }
    return out;
  }
  if (v instanceof Closure || v instanceof Builtin || v === undefined) return undefined;
  fail("bad-argument", `Model metadata cannot hold ${describe(v)}`, model.span);
}
