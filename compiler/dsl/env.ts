/** @file Lexical scopes of the spec interpreter. */
import type { SourceSpan } from "../diagnostics.ts";
import { fail, type Value } from "./values.ts";

interface Binding {
  value: Value;
  readonly mutable: boolean;
}

/** A scope: names to bindings, with a parent. */
export class Env {
  readonly #vars = new Map<string, Binding>();
  constructor(readonly parent?: Env) {}

  /** Declares a name in this scope. */
  define(name: string, value: Value, mutable: boolean, span: SourceSpan): void {
    if (this.#vars.has(name)) fail("duplicate-name", `Cannot redeclare "${name}" in the same scope`, span);
    this.#vars.set(name, { value, mutable });
  }

  /** Finds a binding, innermost first. */
  lookup(name: string): Binding | undefined {
    return this.#vars.get(name) ?? this.parent?.lookup(name);
  }

  /** Names visible from this scope (for "did you mean" hints). */
  names(): string[] {
    return [...this.#vars.keys(), ...(this.parent?.names() ?? [])];
  }
}
