/** @file Source spans, diagnostics and their rendering (`file:line:col`, source line, caret, notes). */

/** A range in a spec file. Line and column are 1-based; column counts UTF-16 units. */
export interface SourceSpan {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly length: number;
  readonly lineText: string;
}

/** Extra context for a diagnostic: a fix hint, or where a related value came from. */
export interface Note {
  readonly message: string;
  readonly span?: SourceSpan;
}

/** One problem found in a spec. `id` is stable and kebab-case: tests assert on it. */
export interface Diagnostic {
  readonly severity: "error" | "warning";
  readonly id: string;
  readonly message: string;
  readonly span?: SourceSpan;
  readonly notes: readonly Note[];
  readonly pass?: string;
  readonly plugin?: string;
}

/** Thrown by the compiler when any error diagnostic was reported. */
export class CompileError extends Error {
  constructor(readonly diagnostics: readonly Diagnostic[]) {
    super(formatDiagnostics(diagnostics));
    this.name = "CompileError";
  }
}

/** Convenience constructor for an error diagnostic. */
export function error(
  id: string,
  message: string,
  span: SourceSpan | undefined,
  notes: readonly Note[] = [],
): Diagnostic {
  return { severity: "error", id, message, notes, ...(span ? { span } : {}) };
}

/**
 * An error about an IR node, located where the user can act on it: a node made inside a DSL
 * library block (compiler/dsl/lib) is reported at the innermost call from outside the library,
 * with a note giving the library line.
 */
export function nodeError(
  id: string,
  message: string,
  node: { readonly span: SourceSpan; readonly trace?: readonly SourceSpan[] },
  notes: readonly Note[] = [],
): Diagnostic {
  const inLibrary = (s: SourceSpan) => s.file.replaceAll("\\", "/").includes("compiler/dsl/lib/");
  if (!inLibrary(node.span)) return error(id, message, node.span, notes);
  const user = [...(node.trace ?? [])].reverse().find((s) => !inLibrary(s));
  if (!user) return error(id, message, node.span, notes);
  return error(id, message, user, [...notes, { message: "raised inside this library block", span: node.span }]);
}

/** `file:line:col` of a span. */
export function location(span: SourceSpan): string {
  return `${span.file}:${span.line}:${span.column}`;
}

/** Renders one diagnostic the way the CLI prints it. */
export function formatDiagnostic(d: Diagnostic): string {
  const head = `${d.severity}[${d.id}]: ${d.message}`;
  const lines = d.span ? [`${location(d.span)}: ${head}`, ...excerpt(d.span)] : [head];
  for (const note of d.notes) {
    lines.push(`  note: ${note.message}`);
    if (note.span) lines.push(`     ${location(note.span)}`);
  }
  return lines.join("\n");
}

/** Renders several diagnostics separated by blank lines. */
export function formatDiagnostics(ds: readonly Diagnostic[]): string {
  return ds.map(formatDiagnostic).join("\n\n");
}

// `  14 |   const y = f(x);` and a caret line under the span.
function excerpt(span: SourceSpan): string[] {
  const gutter = String(span.line);
  const pad = " ".repeat(gutter.length);
  const width = Math.max(1, Math.min(span.length, span.lineText.length - span.column + 1));
  const caret = " ".repeat(span.column - 1) + "^".repeat(width);
  return [`  ${gutter} | ${span.lineText}`, `  ${pad} | ${caret}`];
}
