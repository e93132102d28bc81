/**
 * @file The `varc` command line: compile, bundle, explain, forward, generate, sample, pack, decode (and --help
 * on each).
 *
 * Errors never print stack traces: spec problems print diagnostics with
 * `file:line:col`; bad files and flags print one message naming the tensor or flag.
 */
import { parseArgs } from "node:util";
import { bundleCommand } from "./bundle.ts";
import { compileCommand } from "./compile.ts";
import { decodeCommand } from "./decode.ts";
import { explainCommand } from "./explain.ts";
import { forwardCommand } from "./forward.ts";
import { generateCommand } from "./generate.ts";
import { packCommand } from "./pack.ts";
import { sampleCommand } from "./sample.ts";
import { type Command, type Options, printable, terminalText, UsageError } from "./common.ts";
import { CompileError } from "../compiler/diagnostics.ts";
import { closest } from "../compiler/dsl/values.ts";
import { escapeUnprintable } from "../runtime/text.ts";

const COMMANDS: Readonly<Record<string, Command>> = {
  compile: compileCommand,
  bundle: bundleCommand,
  explain: explainCommand,
  forward: forwardCommand,
  generate: generateCommand,
  sample: sampleCommand,
  pack: packCommand,
  decode: decodeCommand,
};

const USAGE = `varc — a compiler and runtime for Visual AutoRegressive (VAR) image models

Usage: varc <command> [options]   (deno task varc <command> …)

Commands:
${Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(10)}${c.summary}`).join("\n")}

Run "varc <command> --help" for the options of a command.`;

/** Runs the CLI; returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(USAGE);
    return name === undefined ? 1 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    const near = closest(name, Object.keys(COMMANDS));
    console.error(
      `error: unknown command ${terminalText(JSON.stringify(name))}${
        near ? ` (did you mean "${near}"?)` : ""
      }\n\n${USAGE}`,
    );
    return 1;
  }
  try {
    const options = { ...command.options, help: { type: "boolean" as const, short: "h" } };
    const parsed = parseArgs({
      args: attachNegatives(rest, options),
      options,
      allowPositionals: true,
      strict: true,
      tokens: true,
    });
    rejectRepeats(parsed.tokens, options);
    if (parsed.values.help) {
      console.log(command.usage);
      return 0;
    }
    // what a command prints on success names paths and labels the user or a file gave: control characters escaped
    const log = console.log;
    console.log = (...parts: unknown[]) => log(...parts.map((p) => typeof p === "string" ? printable(p) : p));
    try {
      await command.run(parsed.values as Record<string, unknown>, parsed.positionals);
    } finally {
      console.log = log;
    }
    return 0;
  } catch (e) {
    return reportError(e, name, command);
  }
}

/** `--top-k -1` -> `--top-k=-1`: a negative number after a string flag is its value (the range check names it). */
function attachNegatives(args: readonly string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!, next = args[i + 1];
    const flag = a.startsWith("--") && !a.includes("=") ? options[a.slice(2)] : undefined;
    if (flag?.type === "string" && next !== undefined && /^-[0-9.]/.test(next)) out.push(`${a}=${next}`), i++;
    else out.push(a);
  }
  return out;
}

/** A flag given twice is an error (parseArgs would keep the last value silently). */
function rejectRepeats(tokens: readonly { kind: string; name?: string; value?: string }[], options: Options): void {
  const seen = new Map<string, string | undefined>();
  for (const t of tokens) {
    if (t.kind !== "option" || !t.name || options[t.name]?.multiple) continue;
    if (seen.has(t.name)) {
      const values = [seen.get(t.name), t.value].filter((v) => v !== undefined).map((v) => `"${v}"`).join(" and ");
      throw new UsageError(`--${t.name} is given twice${values ? ` (${values})` : ""}: give it once`);
    }
    seen.set(t.name, t.value);
  }
}

/** Prints an error of `command` for the user; returns the exit code (2 for an internal error). */
export function reportError(e: unknown, name: string, command: Command): number {
  if (e instanceof CompileError) {
    console.error(terminalText(e.message));
    const n = e.diagnostics.length;
    console.error(`\n${n} error${n === 1 ? "" : "s"}`);
  } else if (
    e instanceof UsageError || (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"))
  ) {
    const unknown = /Unknown option '--([^']*)'/.exec((e as Error).message)?.[1];
    const near = unknown && closest(unknown, [...Object.keys(command.options), "help"]);
    const text = unknown !== undefined
      ? `Unknown option '--${unknown}'${near ? ` (did you mean --${near}?)` : ""}`
      : (e as Error).message;
    console.error(`error: ${oneLine(text)}\n\n${command.usage}`);
  } else if (e instanceof Error && KNOWN_ERRORS.has(e.name)) {
    // One line (a line break inside a path or name is escaped), but a list of checkpoint problems.
    console.error(`error: ${e.name === "WeightsError" ? terminalText(e.message) : oneLine(e.message)}`);
  } else {
    // Not a user mistake: say so, in one line, and where to look.
    console.error(
      `internal error in "varc ${name}": ${terminalText(describe(e).split("\n")[0]!)}\n` +
        `This is a bug in varc, not a problem with your input. Run with VARC_DEBUG=1 for the stack trace, ` +
        `and report it with the command line.`,
    );
    if (Deno.env.get("VARC_DEBUG")) console.error(e instanceof Error ? e.stack : e);
    return 2;
  }
  return 1;
}

/** `text` as one terminal line: every line break and control character escaped, cut when long. */
function oneLine(text: string): string {
  return terminalText(escapeUnprintable(text, "\t"));
}

/** Any thrown value as text (some have no string form: an object without a prototype). */
function describe(e: unknown): string {
  try {
    return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  } catch {
    return `a thrown ${typeof e} without a string form`;
  }
}

/** User-facing error classes of the runtime (messages name the tensor, flag or input). */
const KNOWN_ERRORS = new Set([
  "SafetensorsError",
  "WeightsError",
  "InputError",
  "KernelError",
  "GenerateError",
  "GuardError",
  "NumericsError",
  "NonFiniteLogitsError",
  "NonFiniteOutputError",
  "OutputError",
  "ResourceError",
  "SampleSetError",
  "ShardError",
  "UnknownPassError",
  "VarModelError",
]);

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
