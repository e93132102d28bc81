/** @file Shared pieces of CLI commands: the command shape, flag readers, usage errors. */

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

/** `--labels 3,7` -> [3, 7], each an integer in [0, classes). */
export function parseLabels(text: string, classes: number): number[] {
  const labels = text.split(",").map((s) => s.trim());
  return labels.map((s) => {
    const v = Number(s);
    if (s === "" || !Number.isInteger(v) || v < 0 || v >= classes) {
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
