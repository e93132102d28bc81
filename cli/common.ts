/** @file Shared pieces of CLI commands: the command shape, flag readers, usage errors. */
import { escapeUnprintable } from "../runtime/text.ts";

/** A bad flag or flag value; printed with the command's usage. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** `node:util` parseArgs option descriptors. */
export type Options = Record<
  string,
  { type: "string" | "boolean"; multiple?: boolean; short?: string; default?: string | boolean }
>;

/** One subcommand. */
export interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly options: Options;
  run(values: Record<string, unknown>, positionals: readonly string[]): Promise<void>;
}

/** The single positional spec path. */
export function specArg(positionals: readonly string[]): string {
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "missing <spec.var.ts>"
        : `expected one spec file, got ${positionals.length}: ${positionals.join(" ")}`,
    );
  }
  return positionals[0]!;
}

/** A required string flag. */
export function required(values: Record<string, unknown>, flag: string): string {
  const v = values[flag];
  if (typeof v !== "string" || v === "") throw new UsageError(`missing --${flag}`);
  return v;
}

/** `--labels 3,7` -> [3, 7], each a decimal integer in [0, classes) (no signs, exponents or hex). */
export function parseLabels(text: string, classes: number): number[] {
  const labels = text.split(",").map((s) => s.trim());
  return labels.map((s) => {
    const v = Number(s);
    if (!/^[0-9]{1,9}$/.test(s) || v >= classes) {
      throw new UsageError(
        `--labels: "${s}" is not a class index in [0, ${classes}) (the model has ${classes} classes)`,
      );
    }
    return v;
  });
}

/** Comma-separated pass names of `--print-ir-after`. */
export function passList(v: unknown): string[] {
  return typeof v === "string" ? v.split(",").map((s) => s.trim()).filter(Boolean) : [];
}

/** Thousands separators: 310283520 -> "310,283,520". */
export function grouped(n: number): string {
  return n.toLocaleString("en-US");
}

/** A numeric flag: absent -> `fallback`; anything but a finite number is a usage error. */
export function numberFlag(values: Record<string, unknown>, flag: string, fallback: number): number {
  const v = values[flag];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !Number.isFinite(n)) {
    throw new UsageError(`--${flag} must be a number, got "${v}"`);
  }
  return n;
}

/** Reports progress per scale: a bar on a terminal, plain lines otherwise. */
export function scaleProgress(schedule: readonly number[]): (s: number, scales: number, ms: number) => void {
  const tty = Deno.stderr.isTerminal();
  const enc = new TextEncoder();
  return (s, scales, ms) => {
    const pn = schedule[s]!;
    const label = `scale ${s + 1}/${scales} (${pn}x${pn}) ${ms.toFixed(0)} ms`;
    if (!tty) return console.error(label);
    const width = 30, done = Math.round(((s + 1) / scales) * width);
    const bar = `\r[${"#".repeat(done)}${".".repeat(width - done)}] ${label}`;
    Deno.stderr.writeSync(enc.encode(s + 1 === scales ? bar + "\n" : bar));
  };
}

/** Longest line printed from an error message; longer ones keep their start and say how long they were. */
export const MAX_LINE = 400;

/**
 * Text for a terminal from messages that may embed file contents (tensor names, spec lines, metadata):
 * control, bidirectional and invisible formatting characters are escaped as \\uXXXX (line breaks of
 * the message itself stay), and each line is cut at MAX_LINE characters with its full length noted.
 */
export function terminalText(message: string): string {
  return printable(message).split("\n").map((line) =>
    line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}… (${line.length} characters)` : line
  ).join("\n");
}

/** Text with line breaks and tabs kept and every other control character escaped (`\u001b` …), nothing cut. */
export function printable(text: string): string {
  return text.split("\n").map((line) => escapeUnprintable(line, "\t")).join("\n");
}
