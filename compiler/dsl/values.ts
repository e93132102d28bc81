/** @file Values of the spec interpreter, and the error type builtins throw. */
import { escapeUnprintable } from "../../runtime/text.ts";
import type { ArrowFunction, FunctionDeclaration, FunctionExpression } from "ts-morph";
import type { Diagnostic, Note, SourceSpan } from "../diagnostics.ts";
import { error } from "../diagnostics.ts";
import type { MaskSpec } from "../ir/ops.ts";
import type { Env } from "./env.ts";

/** A symbolic tensor: the id of an IR node. */
export class TensorRef {
  constructor(readonly id: number) {}
}
/** The run-time batch size `B`. */
export class BatchSym {
  readonly symbol = "B";
}
/** A mask over scales. */
export class MaskVal {
  constructor(readonly spec: MaskSpec) {}
}
/** The spec's `model(...)` result. */
export class ModelVal {
  constructor(
    readonly name: string,
    readonly entries: ReadonlyMap<string, ReadonlyMap<string, TensorRef>>,
    readonly meta: ObjVal,
    readonly optionalWeights: readonly string[],
    readonly span: SourceSpan,
  ) {}
}
/** An object literal; remembers where each property was written, for diagnostics. */
export class ObjVal {
  constructor(
    readonly props: Map<string, Value>,
    readonly span: SourceSpan | undefined,
    readonly spans: Map<string, SourceSpan> = new Map(),
  ) {}
}
/** A user function (declaration, arrow or function expression) and its defining scope. */
export class Closure {
  constructor(
    readonly name: string,
    readonly node: FunctionDeclaration | ArrowFunction | FunctionExpression,
    readonly env: Env,
  ) {}
}

/** Where a builtin was called from: the call and each argument. */
export interface CallSite {
  readonly span: SourceSpan;
  readonly argSpans: readonly SourceSpan[];
  /** Calls a DSL function value (closure or builtin) with arguments. */
  call(fn: Value, args: Value[]): Value;
}

/** A DSL function implemented by the compiler. */
export class Builtin {
  constructor(readonly name: string, readonly impl: (args: Value[], at: CallSite) => Value) {}
}

/** Every value a spec expression can produce. */
export type Value =
  | undefined
  | null
  | boolean
  | number
  | string
  | Value[]
  | ObjVal
  | Closure
  | Builtin
  | TensorRef
  | BatchSym
  | MaskVal
  | ModelVal;

/** A user error found while reading a spec; carries one or more diagnostics. */
export class SpecError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    super(diagnostics.map((d) => d.message).join("; "));
    this.name = "SpecError";
  }
}

/** Throws a SpecError with one error diagnostic. */
export function fail(id: string, message: string, span: SourceSpan | undefined, notes: readonly Note[] = []): never {
  throw new SpecError([error(id, message, span, notes)]);
}

/** A short description of a value for messages: `number 3`, `a tensor`, `string "x"`. */
export function describe(v: Value): string {
  if (v === undefined) return "undefined";
  if (v === null) return "null";
  if (typeof v === "number") return `number ${v}`;
  if (typeof v === "string") return `string ${quote(v, 40)}`;
  if (typeof v === "boolean") return `boolean ${v}`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof TensorRef) return "a tensor";
  if (v instanceof BatchSym) return "the batch size B";
  if (v instanceof MaskVal) return `a ${v.spec.kind} mask`;
  if (v instanceof ModelVal) return "a model";
  if (v instanceof Closure || v instanceof Builtin) return `function "${v.name}"`;
  return "an object";
}

/**
 * A string as a double-quoted literal for messages: shortened to `max` characters, with controls,
 * line separators and bidirectional-text marks escaped so that a hostile name prints as what it is.
 */
export function quote(s: string, max = 80): string {
  const short = s.length > max ? s.slice(0, max) + "…" : s;
  return escapeUnprintable(JSON.stringify(short)); // JSON escapes C0 controls, not DEL, C1 or bidi marks
}

/** The nearest of `names` within edit distance 2, ignoring case (for "did you mean"); undefined when none is. */
export function closest(name: string, names: readonly string[]): string | undefined {
  let best: string | undefined, bestD = 3;
  for (const n of names) {
    const d = editDistance(name.toLowerCase(), n.toLowerCase());
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best;
}

/** Levenshtein distance of short strings; 3 (far) when the lengths differ by more than 2. */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || a.length > 256 || b.length > 256) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur.push(Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
