/**
 * @file The `varc` command line: compile, bundle, explain, forward, generate, decode (and --help on each).
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
import { type Command, UsageError } from "./common.ts";
import { CompileError } from "../compiler/diagnostics.ts";

const COMMANDS: Readonly<Record<string, Command>> = {
  compile: compileCommand,
  bundle: bundleCommand,
  explain: explainCommand,
  forward: forwardCommand,
  generate: generateCommand,
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
    console.error(`error: unknown command "${name}"\n\n${USAGE}`);
    return 1;
  }
  try {
    const parsed = parseArgs({
      args: [...rest],
      options: { ...command.options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    if (parsed.values.help) {
      console.log(command.usage);
      return 0;
    }
    await command.run(parsed.values as Record<string, unknown>, parsed.positionals);
    return 0;
  } catch (e) {
    return reportError(e, command);
  }
}

function reportError(e: unknown, command: Command): number {
  if (e instanceof CompileError) {
    console.error(e.message);
    const n = e.diagnostics.length;
    console.error(`\n${n} error${n === 1 ? "" : "s"}`);
  } else if (
    e instanceof UsageError || (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"))
  ) {
    console.error(`error: ${(e as Error).message}\n\n${command.usage}`);
  } else if (e instanceof Error && KNOWN_ERRORS.has(e.name)) {
    console.error(`error: ${e.message}`);
  } else {
    throw e;
  }
  return 1;
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
  "ResourceError",
  "TypeError",
]);

if (import.meta.main) Deno.exit(await main(Deno.args));
