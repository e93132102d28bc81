/**
 * @file `deno task dts`: writes `compiler/backends/declarations.ts`, the `.d.ts` of compiled model
 * modules, from the declarations of `compiler/backends/module_exports.ts`. TypeScript's declaration
 * emit gives every module's declarations (doc comments kept); from the exports of each part, every
 * declaration they name is followed through imports and re-exports into runtime/ and compiler/ and
 * copied, so each `.d.ts` is one self-contained file with the runtime's own types and docs.
 * `declarations_test.ts` runs `declarations()` and fails when the written file differs.
 *
 * Takes a few seconds (a type check of the modules involved), which is why bundling reads the
 * written file instead of running this.
 */
import { Node, Project, type SourceFile, type Statement, SyntaxKind, ts } from "ts-morph";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SURFACE = fileURLToPath(new URL("../compiler/backends/module_exports.ts", import.meta.url));
const OUT = fileURLToPath(new URL("../compiler/backends/declarations.ts", import.meta.url));

/**
 * The exports of `module_exports.ts` in each part: every target's generated module, what a host or a
 * device target's module adds, and what a bundle adds (every export in exactly one part).
 */
const PARTS = {
  module: ["HostTensor", "Tensor", "info", "entries"],
  host: ["guardStats"],
  device: ["Gpu"],
  bundle: [
    "report",
    "WeightSource",
    "Weights",
    "LoadOptions",
    "LoadedModel",
    "load",
    "GenerateOptions",
    "Generation",
    "generate",
    "fetchBytes",
    "RgbaImage",
    "toRgba",
    "default",
  ],
} as const;

/** The `.d.ts` files: `varc compile`'s module and `varc bundle`'s, for host and device targets. */
const FILES = {
  hostModule: [...PARTS.module, ...PARTS.host],
  deviceModule: [...PARTS.module, ...PARTS.device],
  hostBundle: [...PARTS.module, ...PARTS.host, ...PARTS.bundle],
  deviceBundle: [...PARTS.module, ...PARTS.device, ...PARTS.bundle],
} as const;

const OPTIONS: ts.CompilerOptions = {
  strict: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  allowImportingTsExtensions: true,
  lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
  skipLibCheck: true,
};

/**
 * The source of `declarations.ts`: every declaration once, by the name it declares, and the names
 * each `.d.ts` of `FILES` holds in order.
 */
export async function declarations(): Promise<string> {
  const dts = declarationProject();
  const surface = dts.getSourceFileOrThrow(SURFACE);
  const exported = [...surface.getExportedDeclarations().keys()].sort();
  const listed = Object.values(PARTS).flat().sort();
  if (JSON.stringify(exported) !== JSON.stringify(listed)) {
    throw new Error(`PARTS must list every export of module_exports.ts once: exports ${exported}, listed ${listed}`);
  }
  const texts = new Map<string, Statement>();
  const files = Object.entries(FILES).map(([file, exports]) => {
    const names = flatten(surface, exports).map((statement) => {
      const name = declaredName(statement), seen = texts.get(name);
      if (seen && seen !== statement) {
        throw new Error(`Two declarations of "${name}" (${where(seen)}, ${where(statement)})`);
      }
      texts.set(name, statement);
      return name;
    });
    return `  ${file}: [${names.map((n) => JSON.stringify(n)).join(", ")}],`;
  });
  const entries = [...texts].map(([name, statement]) =>
    `  ${JSON.stringify(name)}: \`${escape(printed(statement))}\`,`
  );
  return await formatted(`/**
 * @file The \`.d.ts\` of compiled model modules, from the declarations of \`module_exports.ts\` and the
 * runtime and compiler types they name. Written by \`deno task dts\` (\`tools/dts.ts\`); do not edit
 * (\`declarations_test.ts\` fails when this is stale).
 */

/** Each declaration, by the name it declares. */
const DECLARATIONS: Readonly<Record<string, string>> = {
${entries.join("\n")}
};

/** The declarations of each \`.d.ts\`, in order. */
const FILES = {
${files.join("\n")}
} as const;

/**
 * A \`.d.ts\`: \`varc compile\`'s generated module (\`hostModule\`: js; \`deviceModule\`: webgpu) or a
 * bundle's, with the compile report and the loader API (\`hostBundle\`, \`deviceBundle\`).
 */
export function dts(file: keyof typeof FILES): string {
  return \`\${FILES[file].map((name) => DECLARATIONS[name]).join("\\n\\n")}\\n\\nexport {};\\n\`;
}
`);
}

/** TypeScript source as \`deno fmt\` writes it (with the repository's settings). */
async function formatted(source: string): Promise<string> {
  const fmt = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext", "ts", "-"],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = fmt.stdin.getWriter();
  await writer.write(new TextEncoder().encode(source));
  await writer.close();
  const out = await fmt.output();
  if (!out.success) throw new Error(`deno fmt: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/** Text as the inside of a template literal. */
function escape(text: string): string {
  return text.replace(/[\\`]|\$\{/g, (c) => `\\${c}`);
}

/**
 * The declarations of every module reachable from `module_exports.ts`, as emitted by TypeScript, in an
 * in-memory project at the same paths (so imports resolve as in the sources).
 */
function declarationProject(): Project {
  const project = new Project({ compilerOptions: { ...OPTIONS, declaration: true, emitDeclarationOnly: true } });
  const surface = project.addSourceFileAtPath(SURFACE);
  project.resolveSourceFileDependencies();
  const errors = surface.getPreEmitDiagnostics();
  if (errors.length > 0) throw new Error(project.formatDiagnosticsWithColorAndContext(errors));
  const dts = new Project({ compilerOptions: OPTIONS, useInMemoryFileSystem: true });
  for (const file of project.emitToMemory({ emitOnlyDtsFiles: true }).getFiles()) {
    dts.createSourceFile(file.filePath.replace(/\.d\.ts$/, ".ts"), file.text);
  }
  return dts;
}

/**
 * The declarations of one `.d.ts` holding `exports` of the surface: theirs and, transitively, every
 * top-level declaration one of them names, in the order found; names must be unique.
 */
function flatten(surface: SourceFile, exports: readonly string[]): Statement[] {
  const byName = new Map<string, Statement>();
  const add = (statement: Statement) => {
    const name = declaredName(statement);
    const seen = byName.get(name);
    if (seen === statement) return;
    if (seen) {
      throw new Error(
        `Two declarations of "${name}" (${where(seen)}, ${where(statement)}): rename one, the .d.ts is one scope`,
      );
    }
    byName.set(name, statement);
    for (const dep of dependencies(statement)) add(dep);
  };
  const declared = surface.getExportedDeclarations();
  for (const name of exports) {
    for (const decl of declared.get(name) ?? []) add(statementOf(decl));
    if (name === "default") add(surface.getExportAssignmentOrThrow((e) => !e.isExportEquals()));
  }
  return [...byName.values()];
}

/** The name a top-level statement declares (`default` for `export default`). */
function declaredName(statement: Statement): string {
  if (Node.isExportAssignment(statement)) return "default";
  if (Node.isVariableStatement(statement)) return statement.getDeclarations().map((d) => d.getName()).join(", ");
  const name = Node.hasName(statement) ? statement.getName() : undefined;
  if (!name) throw new Error(`Unexpected declaration at ${where(statement)}`);
  return name;
}

/** The top-level statement of a top-level declaration (a variable's whole statement), else undefined. */
function statementOf(decl: Node): Statement;
function statementOf(decl: Node, optional: true): Statement | undefined;
function statementOf(decl: Node, optional = false): Statement | undefined {
  const node = Node.isVariableDeclaration(decl) ? decl.getVariableStatement() : decl;
  if (node && Node.isStatement(node) && Node.isSourceFile(node.getParent())) return node;
  if (optional) return undefined;
  throw new Error(`Unexpected declaration at ${where(decl)}`);
}

/** The top-level declarations of the project's own modules that a statement names. */
function dependencies(statement: Statement): Statement[] {
  const out: Statement[] = [];
  for (const id of statement.getDescendantsOfKind(SyntaxKind.Identifier)) {
    let symbol = id.getSymbol();
    if (!symbol) continue;
    if (symbol.isAlias()) symbol = symbol.getAliasedSymbol() ?? symbol;
    for (const decl of symbol.getDeclarations()) {
      if (decl.getSourceFile().isDeclarationFile()) continue; // the standard library's types
      const dep = statementOf(decl, true); // members, parameters and type parameters are not
      if (!dep || dep === statement || Node.isImportDeclaration(dep) || Node.isExportDeclaration(dep)) continue;
      if (id.getText() !== symbol.getName()) {
        throw new Error(`${where(id)} names "${symbol.getName()}" as "${id.getText()}": import it under its own name`);
      }
      out.push(dep);
    }
  }
  return out;
}

/**
 * A statement's text with its doc comment (not a file's), indented by two spaces a level, with
 * `import("…").X` types written as `X` (the `.d.ts` declares X itself).
 */
function printed(statement: Statement): string {
  for (const t of statement.getDescendantsOfKind(SyntaxKind.ImportType)) {
    if (!Node.isIdentifier(t.getQualifier())) throw new Error(`Unexpected type ${t.getText()} at ${where(t)}`);
  }
  const doc = Node.isJSDocable(statement) ? statement.getJsDocs().at(-1) : undefined;
  const own = doc && !doc.getTags().some((t) => ["file", "fileoverview", "module"].includes(t.getTagName()));
  return `${own ? `${doc.getText()}\n` : ""}${statement.getText()}`
    .replace(/\bimport\("[^"]*"\)\./g, "")
    .replace(/^((?: {4})+)/gm, (s) => " ".repeat(s.length / 2));
}

function where(node: Node): string {
  return `${node.getSourceFile().getFilePath()}:${node.getStartLineNumber()}`;
}

if (import.meta.main) {
  await Deno.writeTextFile(OUT, await declarations());
  console.log(`wrote ${OUT}`);
}
