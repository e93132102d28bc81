/**
 * @file Checks that a compiled module is a VAR model a command can run: its metadata (schedule, classes,
 * vocab, tokens) is well formed and agrees with itself, and the entries the command runs take and give
 * the tensors the command passes between them, with the shapes the metadata implies.
 */
import type { EntryInfo } from "./mod.ts";

/** A model that lacks what a command needs, or whose metadata and entries disagree; the message names it. */
export class VarModelError extends Error {
  override name = "VarModelError";
}

type Dim = number | "B";
/** A tensor an entry takes or gives; `undefined` dimensions are not checked. */
interface Want {
  readonly dtype: "f32" | "i32";
  readonly shape: readonly (Dim | undefined)[];
}

/** Model metadata every VAR spec records (written by `varModel`, compiler/dsl/lib/var.ts). */
export interface VarMeta {
  readonly classes: number;
  readonly vocab: number;
  readonly tokens: number;
  readonly cvae: number;
  readonly schedule: readonly number[];
}

/** The VAR metadata fields a command reads (checked by checkVarMeta). */
type VarFields = Pick<VarMeta, "schedule" | "classes" | "vocab" | "tokens">;

const whole = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 1;

function shown(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/** What the checks read of a compiled module. */
export interface VarModule {
  readonly info: {
    readonly meta: unknown;
    readonly entries: Readonly<Record<string, EntryInfo>>;
    readonly params?: readonly { name: string; shape: readonly number[] }[];
  };
}

function failer(command: string): (what: string) => never {
  return (what) => {
    throw new VarModelError(`${command} needs a VAR model built with varModel: ${what}`);
  };
}

/**
 * Checks the VAR metadata `command` reads: schedule increasing whole numbers, classes, vocab and tokens
 * whole numbers, tokens the schedule's sum of squares, classes one less than the class embedding's rows.
 */
export function checkVarMeta(module: VarModule, command: string): void {
  const fail = failer(command);
  const meta = module.info.meta as Record<string, unknown>;
  const { schedule, classes, vocab, tokens } = meta;
  if (
    !Array.isArray(schedule) || schedule.length === 0 || !schedule.every(whole) ||
    schedule.some((pn, s) => s > 0 && pn <= schedule[s - 1])
  ) {
    fail(`its metadata schedule is ${shown(schedule)}, expected increasing whole numbers`);
  }
  for (const [k, v] of [["classes", classes], ["vocab", vocab], ["tokens", tokens]] as const) {
    if (!whole(v)) fail(`its metadata ${k} is ${shown(v)}, expected a whole number ≥ 1`);
  }
  const pns = schedule as number[];
  const sum = pns.reduce((a, pn) => a + pn * pn, 0);
  if (sum !== tokens) fail(`its metadata tokens is ${tokens}, but the schedule ${shown(pns)} has ${sum} tokens`);
  // The official tensors whose rows count classes (and the unconditional class) or tokens of the vocabulary.
  const rows = (name: string) => module.info.params?.find((p) => p.name === name)?.shape[0];
  for (
    const [field, value, param, extra] of [
      ["classes", classes, "class_emb.weight", 1],
      ["vocab", vocab, "head.weight", 0],
      ["vocab", vocab, "quantize.embedding.weight", 0],
    ] as const
  ) {
    const n = rows(param);
    if (n !== undefined && n !== (value as number) + extra) {
      fail(`its metadata ${field} is ${value}, but ${param} has ${n} rows${extra ? ` (${field} + ${extra})` : ""}`);
    }
  }
}

/**
 * Checks, of `entries` (the ones `command` runs, after checkVarMeta), every input against what the
 * command passes it (the data flow of generate, decode and forward) and every output the command reads.
 */
export function checkVarEntries(module: VarModule, command: string, entries: readonly string[]): void {
  const fail = failer(command);
  const infos = module.info.entries, meta = module.info.meta as VarFields;
  const S = meta.schedule.length, n = meta.schedule[S - 1]!, V = meta.vocab;
  const out = (entry: string, name: string) => infos[entry]?.outputs.find((o) => o.name === name);
  const fhat: Want = { dtype: "f32", shape: ["B", undefined, n, n] };
  for (const e of entries) {
    const info = infos[e];
    if (!info) continue; // missing entries are reported by name before this check
    let takes: Record<string, Want | undefined>;
    let gives: Record<string, Want | undefined>;
    const step = /^step_(\d+)$/.exec(e), fh = /^fhat_(\d+)$/.exec(e);
    if (step) {
      const s = Number(step[1]), pn = meta.schedule[s]!;
      // Earlier scales' caches come from the previous step, the next input from the previous f̂ update.
      const caches = s === 0 ? [] : infos[`step_${s - 1}`]?.outputs.filter((o) => o.name !== "logits") ?? [];
      takes = {
        labels: { dtype: "i32", shape: ["B"] },
        ...(s > 0
          ? { x_words: out(`fhat_${s - 1}`, "x_words") ?? { dtype: "f32", shape: ["B", pn * pn, undefined] } }
          : {}),
        ...Object.fromEntries(caches.map((c) => [c.name, c])),
      };
      gives = { logits: { dtype: "f32", shape: ["B", pn * pn, V] } };
    } else if (fh) {
      const s = Number(fh[1]), pn = meta.schedule[s]!;
      takes = {
        idx: { dtype: "i32", shape: ["B", pn * pn] },
        ...(s > 0 ? { fhat: out(`fhat_${s - 1}`, "fhat") ?? fhat } : {}),
      };
      gives = {
        fhat,
        ...(s < S - 1 ? { x_words: { dtype: "f32", shape: ["B", meta.schedule[s + 1]! ** 2, undefined] } } : {}),
      };
    } else if (e === "decode") {
      takes = { fhat: out(entries.includes("tokens_to_fhat") ? "tokens_to_fhat" : `fhat_${S - 1}`, "fhat") ?? fhat };
      gives = { img: { dtype: "f32", shape: ["B", 3, undefined, undefined] } };
    } else if (e === "tokens_to_fhat") {
      takes = { idx_BL: { dtype: "i32", shape: ["B", meta.tokens] } };
      gives = { fhat };
    } else if (e === "forward") {
      takes = { labels: { dtype: "i32", shape: ["B"] }, idx_BL: { dtype: "i32", shape: ["B", meta.tokens] } };
      gives = { logits_BLV: { dtype: "f32", shape: ["B", meta.tokens, V] } };
    } else continue;
    for (const i of info.inputs) {
      const want = takes[i.name];
      if (!want) {
        fail(
          `entry ${e} takes an input "${i.name}" that the command does not have (it passes ${
            Object.keys(takes).join(", ")
          })`,
        );
      }
      const bad = mismatch(i, want!);
      if (bad) fail(`entry ${e} takes "${i.name}" as ${bad}`);
    }
    for (const [name, want] of Object.entries(gives)) {
      const o = info.outputs.find((x) => x.name === name);
      if (!o) {
        fail(
          `entry ${e} has no output "${name}" (its outputs: ${info.outputs.map((x) => x.name).join(", ") || "none"})`,
        );
      }
      const bad = mismatch(o!, want!);
      if (bad) fail(`entry ${e} gives "${name}" as ${bad}`);
    }
  }
}

/** How `got` differs from `want` ("i32 [B, 3], expected f32 [B, 4]"), or undefined. */
function mismatch(got: { dtype: string; shape: readonly Dim[] }, want: Want): string | undefined {
  const same = got.dtype === want.dtype && got.shape.length === want.shape.length &&
    want.shape.every((d, k) => d === undefined || d === got.shape[k]);
  const dims = (s: readonly (Dim | undefined)[]) => `[${s.map((d) => d ?? "?").join(", ")}]`;
  return same ? undefined : `${got.dtype} ${dims(got.shape)}, expected ${want.dtype} ${dims(want.shape)}`;
}
