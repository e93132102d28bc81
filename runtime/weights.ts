/** @file Binds checkpoint tensors (safetensors) to a compiled model's params, with named errors. */
import type { SafetensorsFile } from "./safetensors.ts";

/** A checkpoint tensor the model declares. */
export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly source: "var" | "vae";
}

/** A missing, extra, mis-shaped or mistyped checkpoint tensor, or one holding NaN or ±Infinity. */
export class WeightsError extends Error {
  override name = "WeightsError";
}

/** Longest weight-name pattern (`optionalWeights`); longer ones are refused where they are declared. */
export const MAX_PATTERN_LENGTH = 256;

/**
 * `encoder.*` style patterns: `*` matches within one dotted segment, or anything when it ends the
 * pattern. Matched segment by segment without regular expressions: time O(|name|·|pattern|) at worst.
 */
export function matchesPattern(name: string, pattern: string): boolean {
  if (pattern.length > MAX_PATTERN_LENGTH) return false;
  const ps = pattern.split("."), ns = name.split(".");
  // A final * also matches dots: the name may have more segments, which it absorbs. Its own segment
  // then ends in *, so matching that segment as a whole already leaves the rest of it free.
  const open = pattern.endsWith("*");
  if (open ? ns.length < ps.length : ns.length !== ps.length) return false;
  return ps.every((p, k) => globSegment(ns[k]!, p));
}

/**
 * Wildcard match of one segment (`*` = any run of characters): greedy, returning to the last `*` on
 * a mismatch, which never needs more than |s|·|p| steps.
 */
function globSegment(s: string, p: string): boolean {
  let i = 0, j = 0, star = -1, mark = 0;
  while (i < s.length) {
    if (j < p.length && p[j] !== "*" && p[j] === s[i]) i++, j++;
    else if (j < p.length && p[j] === "*") star = j++, mark = i;
    else if (star >= 0) j = star + 1, i = ++mark;
    else return false;
  }
  while (j < p.length && p[j] === "*") j++;
  return j === p.length;
}

/** A shape for a message: every dimension up to 8, else the first 8 and the count. */
function dims(shape: readonly number[]): string {
  return shape.length <= 8
    ? `[${shape.join(", ")}]`
    : `[${shape.slice(0, 8).join(", ")}, …] (${shape.length} dimensions)`;
}

/**
 * What is wrong with a checkpoint tensor holding NaN or ±Infinity (undefined when all values are finite):
 * how many, and the first with its index. Every output computed from one would be non-finite or
 * silently saturated, so such a checkpoint is refused when it is bound.
 */
export function nonFinite(data: Float32Array, shape: readonly number[]): string | undefined {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  let count = 0, first = -1;
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i]! & 0x7f800000) === 0x7f800000) count++, first = first < 0 ? i : first; // exponent all ones
  }
  if (count === 0) return undefined;
  const at: number[] = [];
  for (let rest = first, k = shape.length - 1; k >= 0; k--) {
    at.unshift(rest % shape[k]!), rest = Math.floor(rest / shape[k]!);
  }
  return `holds ${count} non-finite value${count === 1 ? "" : "s"} (first: ${data[first]} at [${
    at.join(", ")
  }]): the checkpoint is damaged`;
}

/**
 * Checks the declared params (all, or only `required` ones) against the files and returns a lookup;
 * tensors in a file that the model neither declares nor ignores are errors. Reports all problems at once.
 */
export function bindWeights(
  params: readonly ParamSpec[],
  files: Partial<Record<"var" | "vae", SafetensorsFile>>,
  optional: readonly string[],
  required?: ReadonlySet<string>,
): (name: string) => Float32Array {
  const problems: string[] = [];
  const bound = new Map<string, Float32Array>();
  const missing = new Map<string, string[]>();
  for (const p of params) {
    if (required && !required.has(p.name)) continue;
    const file = files[p.source];
    if (!file) {
      problems.push(
        `tensor "${p.name}" comes from the ${p.source.toUpperCase()} checkpoint, but none was given (--${p.source})`,
      );
      continue;
    }
    const e = file.entries.get(p.name);
    if (!e) {
      const list = missing.get(file.file) ?? [];
      list.push(`"${p.name}" (F32 [${p.shape.join(", ")}])`);
      missing.set(file.file, list);
    } else if (e.dtype !== "F32") {
      problems.push(`${file.file}: tensor "${p.name}" has dtype ${e.dtype}, expected F32`);
    } else if (e.shape.join() !== p.shape.join()) {
      problems.push(
        `${file.file}: tensor "${p.name}" has shape ${dims(e.shape)}, expected [${p.shape.join(", ")}]`,
      );
    } else {
      const data = file.f32(p.name), bad = nonFinite(data, p.shape);
      if (bad) problems.push(`${file.file}: tensor "${p.name}" ${bad}`);
      bound.set(p.name, data);
    }
  }
  for (const [file, list] of missing) {
    problems.push(`${file}: missing ${plural(list.length, "tensor")} ${listed(list)}`);
  }
  for (const [source, file] of Object.entries(files)) {
    if (!file) continue;
    const declared = new Set(params.filter((p) => p.source === source).map((p) => p.name));
    const extra = [...file.entries.keys()].filter((n) =>
      !declared.has(n) && !optional.some((o) => matchesPattern(n, o))
    );
    if (extra.length > 0) {
      problems.push(
        `${file.file}: unexpected ${plural(extra.length, "tensor")} ${
          listed(extra.map((n) => `"${n}"`))
        }: the model neither uses nor ignores ${
          extra.length > 1 ? "them" : "it"
        } (is this the --${source} checkpoint of this spec?)`,
      );
    }
  }
  if (problems.length > 0) {
    const more = problems.length > 12 ? [`… and ${problems.length - 12} more problems`] : [];
    throw new WeightsError([...problems.slice(0, 12), ...more].join("\n"));
  }
  return (name) => {
    const t = bound.get(name);
    if (!t) throw new WeightsError(`internal: tensor "${name}" was not bound`);
    return t;
  };
}

function plural(n: number, word: string): string {
  return n === 1 ? word : `${n} ${word}s`;
}

function listed(items: readonly string[]): string {
  const shown = items.slice(0, 4).join(", ");
  return items.length > 4 ? `${shown} and ${items.length - 4} more` : shown;
}
