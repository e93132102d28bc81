/** @file Shared pieces of the fuzzers: the seeded generator, case results, repository paths. */
import { fileURLToPath } from "node:url";

/** Repository root (absolute, with a trailing slash). */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Which fuzzer a case belongs to. */
export type FuzzKind = "spec" | "weights" | "cli";

/**
 * How one case ended. `ok`: compiled / parsed and bound; `rejected`: a well-formed error (spanned
 * diagnostics, or a SafetensorsError/WeightsError naming the file); `suspect`: accepted, but the
 * lowered IR breaks an invariant later stages rely on (a finding, not a crash); `failure`: anything
 * else (another exception, an unspanned diagnostic, a hang, a crash).
 */
export type Outcome = "ok" | "rejected" | "suspect" | "failure";

/** A mutant kept for reproduction: text (specs) or bytes (checkpoints, raw spec bytes). */
export interface Artifact {
  readonly ext: string;
  readonly text?: string;
  readonly bytes?: Uint8Array;
}

/** The result of one fuzz case. */
export interface CaseResult {
  readonly kind: FuzzKind;
  readonly index: number;
  /** Mutation class, e.g. `token-delete`, `offsets-lie`. */
  readonly cls: string;
  /** The seed the mutant came from. */
  readonly seed: string;
  readonly outcome: Outcome;
  /** Diagnostic ids or error kind (rejected), or what went wrong (failure). */
  readonly detail: string;
  readonly ms: number;
  /** Only for failures: the mutant. */
  readonly artifact?: Artifact;
}

/** A small, fast, seedable generator (splitmix32); every case derives its own from (seed, kind, index). */
export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let z = (this.#state = (this.#state + 0x9e3779b9) >>> 0);
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 2 ** 32;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** Uniform integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error("Rng.pick: empty list");
    return xs[this.int(xs.length)]!;
  }

  /** Picks by weight: `[[weight, value], …]`. */
  weighted<T>(items: readonly (readonly [number, T])[]): T {
    const total = items.reduce((a, [w]) => a + w, 0);
    let r = this.float() * total;
    for (const [w, v] of items) {
      if ((r -= w) < 0) return v;
    }
    return items.at(-1)![1];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

/** The generator of one case: a function of the run seed, the fuzzer and the case index only. */
export function caseRng(seed: number, kind: FuzzKind, index: number): Rng {
  let h = 0x811c9dc5;
  for (const ch of `${kind}:${seed}:${index}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return new Rng(h >>> 0);
}

/** A short, single-line rendering of an unexpected exception. */
export function describeError(e: unknown): string {
  if (e instanceof Error) {
    const where = (e.stack ?? "").split("\n").find((l) => l.trim().startsWith("at "))?.trim() ?? "";
    return `${e.constructor.name}: ${e.message.slice(0, 300)}${where ? ` (${where})` : ""}`;
  }
  return `non-Error thrown: ${String(e).slice(0, 300)}`;
}
