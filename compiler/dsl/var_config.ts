/** @file `varConfig`: validates VAR options field by field and derives sizes; the official Phi table. */
import { type Diagnostic, error, type SourceSpan } from "../diagnostics.ts";
import { describe, ObjVal, quote, SpecError, type Value } from "./values.ts";

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

type FieldKind = "int" | "number" | "bool" | "string" | "chars" | "schedule" | "list" | "any";
interface Field {
  readonly kind: FieldKind;
  readonly fallback?: Value;
}

/** Fields of `VarOptions` (and the blocks a `VarSpec` may carry), with defaults. */
const FIELDS: Readonly<Record<string, Field>> = {
  name: { kind: "string" },
  depth: { kind: "int" },
  width: { kind: "int" },
  heads: { kind: "int" },
  schedule: { kind: "schedule" },
  mlpRatio: { kind: "number", fallback: 4 },
  classes: { kind: "int", fallback: 1000 },
  classNames: { kind: "chars", fallback: "" },
  vocab: { kind: "int", fallback: 4096 },
  cvae: { kind: "int", fallback: 32 },
  sharedAdaLN: { kind: "bool", fallback: false },
  normEps: { kind: "number", fallback: 1e-6 },
  tauMax: { kind: "number", fallback: 100 },
  vaeCh: { kind: "int", fallback: 160 },
  vaeChMult: { kind: "list", fallback: [1, 1, 2, 2, 4] },
  vaeResBlocks: { kind: "int", fallback: 2 },
  ffn: { kind: "any" },
  window: { kind: "any" },
};

/** Checks every field, reports all problems at once, returns the config with derived sizes. */
export function validateVarConfig(o: ObjVal, callSpan: SourceSpan): ObjVal {
  const problems: Diagnostic[] = [];
  const at = (k: string) => o.spans.get(k) ?? o.span ?? callSpan;
  const bad = (id: string, k: string, msg: string, hint?: string) =>
    problems.push(error(id, msg, at(k), hint ? [{ message: hint }] : []));
  for (const k of o.props.keys()) {
    if (!(k in FIELDS)) {
      bad("unknown-field", k, `Unknown VAR option "${k}"`, `Known options: ${Object.keys(FIELDS).join(", ")}`);
    }
  }
  const out = new Map<string, Value>();
  for (const [k, f] of Object.entries(FIELDS)) {
    if (f.kind === "any") continue;
    const v = o.props.get(k) ?? f.fallback;
    if (v === undefined) {
      problems.push(error("missing-field", `Missing required VAR option "${k}"`, o.span ?? callSpan, [
        { message: `Add "${k}: …" to the options object` },
      ]));
      continue;
    }
    const msg = checkField(k, f.kind, v);
    if (msg) bad(msg.id, k, msg.message, msg.hint);
    else out.set(k, v);
  }
  const width = out.get("width"), heads = out.get("heads"), ratio = out.get("mlpRatio");
  if (typeof width === "number" && typeof heads === "number" && width % heads !== 0) {
    bad(
      "not-divisible",
      "heads",
      `Cannot split width ${width} into ${heads} heads: ${width} is not divisible by ${heads}`,
      `Pick heads among the divisors of ${width}: ${nearestDivisors(width, heads)}`,
    );
  }
  if (typeof width === "number" && typeof ratio === "number" && !Number.isInteger(width * ratio)) {
    bad("not-divisible", "mlpRatio", `FFN width ${width} × mlpRatio ${ratio} = ${width * ratio} is not an integer`);
  }
  const names = out.get("classNames"), classes = out.get("classes");
  if (typeof names === "string" && names !== "" && typeof classes === "number" && names.length !== classes) {
    bad(
      "bad-field",
      "classNames",
      `"classNames" names ${names.length} classes, but the model has ${classes}`,
      `Give one character per class, ${classes} in all (or leave "classNames" out)`,
    );
  }
  const ch = out.get("vaeCh"), mult = out.get("vaeChMult");
  if (typeof ch === "number" && Array.isArray(mult) && mult.some((m) => (ch * (m as number)) % 32 !== 0)) {
    bad(
      "not-divisible",
      "vaeCh",
      `VQ-VAE widths ${mult.map((m) => ch * (m as number)).join(", ")} must all be divisible by 32 (GroupNorm groups)`,
    );
  }
  const window = o.props.get("window");
  if (window !== undefined && (typeof window !== "number" || !Number.isInteger(window) || window < 1)) {
    bad(
      "bad-field",
      "window",
      `VAR option "window" must be a positive integer number of scales, got ${describe(window)}`,
    );
  }
  if (problems.length > 0) throw new SpecError(problems);
  return derived(out, o);
}

/** The divisors of n nearest to k, below and above ("2 or 4 are nearest"). */
function nearestDivisors(n: number, k: number): string {
  let below = 1, above = n;
  for (let d = 1; d * d <= n; d++) {
    if (n % d !== 0) continue;
    for (const e of [d, n / d]) {
      if (e < k) below = Math.max(below, e);
      else if (e > k) above = Math.min(above, e);
    }
  }
  return k > n ? `${n} is the largest` : `${below} or ${above} are nearest`;
}

function checkField(k: string, kind: FieldKind, v: Value): { id: string; message: string; hint?: string } | undefined {
  switch (kind) {
    case "int":
      if (typeof v !== "number" || !Number.isInteger(v)) {
        return { id: "bad-field", message: `VAR option "${k}" must be an integer, got ${describe(v)}` };
      }
      if (v < 1 || v > 1 << 20) {
        return {
          id: "bad-size",
          message: `VAR option "${k}" must be in [1, ${1 << 20}], got ${v}`,
          hint: `Sizes are counts: use a positive "${k}"`,
        };
      }
      return undefined;
    case "number":
      if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
        return { id: "bad-size", message: `VAR option "${k}" must be a positive finite number, got ${describe(v)}` };
      }
      return undefined;
    case "bool":
      return typeof v === "boolean"
        ? undefined
        : { id: "bad-field", message: `VAR option "${k}" must be true or false, got ${describe(v)}` };
    case "string":
      if (typeof v !== "string") {
        return { id: "bad-field", message: `VAR option "${k}" must be a string, got ${describe(v)}` };
      }
      return IDENT.test(v) ? undefined : {
        id: "unsafe-name",
        message: `Model name ${quote(v)} is not a safe identifier (${IDENT.source})`,
        hint: "The name reaches generated JS and WGSL; use letters, digits and '_'",
      };
    case "chars":
      return typeof v === "string" && /^[\x21-\x7e]{0,1024}$/.test(v) ? undefined : {
        id: "bad-field",
        message: `VAR option "${k}" must be a string of printable ASCII characters, one per class, got ${describe(v)}`,
        hint: 'For example classNames: "0123456789" for ten digit classes',
      };
    case "schedule":
      return checkSchedule(v);
    case "list":
      if (
        !Array.isArray(v) || v.length === 0 ||
        !v.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 1 && x <= 64)
      ) {
        return {
          id: "bad-field",
          message: `VAR option "${k}" must be a non-empty array of integers in [1, 64], got ${describe(v)}`,
        };
      }
      return undefined;
    case "any":
      return undefined;
  }
}

function checkSchedule(v: Value): { id: string; message: string; hint?: string } | undefined {
  if (!Array.isArray(v) || v.length === 0) {
    return { id: "bad-schedule", message: `"schedule" must be a non-empty array of side lengths, got ${describe(v)}` };
  }
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== "number" || !Number.isInteger(x) || x < 1 || x > 4096) {
      return {
        id: "bad-schedule",
        message: `Scale ${i} of "schedule" must be an integer side length in [1, 4096], got ${describe(x)}`,
      };
    }
    if (i > 0 && x <= (v[i - 1] as number)) {
      return {
        id: "bad-schedule",
        message: `"schedule" must increase strictly: scale ${i} has side ${x} after ${v[i - 1]}`,
        hint: "VAR predicts coarse to fine, e.g. [1, 2, 3, 4, 5, 6, 8, 10, 13, 16]",
      };
    }
  }
  return undefined;
}

function derived(out: Map<string, Value>, o: ObjVal): ObjVal {
  const width = out.get("width") as number, heads = out.get("heads") as number;
  const schedule = out.get("schedule") as number[];
  out.set("headDim", width / heads);
  out.set("ffnHidden", Math.round(width * (out.get("mlpRatio") as number)));
  out.set("tokens", schedule.reduce((a, n) => a + n * n, 0));
  out.set("phiIndex", phiIndexTable(schedule.length));
  out.set("imageSize", schedule.at(-1)! * 2 ** ((out.get("vaeChMult") as number[]).length - 1));
  return new ObjVal(out, o.span, o.spans);
}

/**
 * Official `PhiPartiallyShared` choice: scale s of S uses argmin_k |ticks_k − s/(S−1)| with
 * ticks = linspace(1/12, 11/12, 4) computed as numpy does (start + i·step), first minimum wins.
 */
export function phiIndexTable(scales: number): number[] {
  const start = 1 / 12, step = (11 / 12 - 1 / 12) / 3;
  const ticks = [0, 1, 2, 3].map((i) => i === 3 ? 11 / 12 : start + i * step);
  return Array.from({ length: scales }, (_, s) => {
    const r = scales === 1 ? 0 : s / (scales - 1);
    let best = 0;
    for (let k = 1; k < 4; k++) if (Math.abs(ticks[k]! - r) < Math.abs(ticks[best]! - r)) best = k;
    return best;
  });
}
