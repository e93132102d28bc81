/** @file Shared pieces of the sample-set tests: the glyph run, the CLI in-process and as a process, folder contents. */
import { main } from "../cli/varc.ts";

/** The shipped glyph model (32 px, about 70 ms an image on two cores). */
export const GLYPHS = {
  spec: "examples/glyphs/standard.var.ts",
  var: "examples/glyphs/var_standard.safetensors",
  vae: "examples/glyphs/vae.safetensors",
};

/** Ten images: classes 3, 7, 10, 11, 12, two each (batches of 4 end with 2; 3 shards get 4, 3 and 3). */
export const CLASSES = [3, 7, 10, 11, 12], PER_CLASS = 2, IMAGES = 10;

/** The sampling flags of every test run (the model card's settings). */
export const SETTINGS = ["--cfg", "2", "--top-k", "20", "--top-p", "0.6", "--seed", "11"];

/** `varc sample` of the ten-image run into `out`, with `extra` flags. */
export function sampleArgs(out: string, ...extra: string[]): string[] {
  return [
    "sample",
    GLYPHS.spec,
    ...["--var", GLYPHS.var, "--vae", GLYPHS.vae, "--classes", "3,7,10-12", "--per-class", String(PER_CLASS)],
    ...SETTINGS,
    ...["--out", out, ...extra],
  ];
}

/** Runs the CLI in this process, capturing what it prints. */
export async function runCli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [], err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await main(argv);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    [console.log, console.error] = [log, error];
  }
}

/** The CLI as a child process (`deno run -A cli/varc.ts …`) with extra environment variables. */
export function spawnCli(args: readonly string[], env: Record<string, string> = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "cli/varc.ts", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Every regular file of `dir` by name, with its bytes. */
export async function files(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(dir)) if (e.isFile) out.set(e.name, await Deno.readFile(`${dir}/${e.name}`));
  return new Map([...out].sort(([a], [b]) => a < b ? -1 : 1));
}

/** The PNG files of `dir`, by name. */
export async function pngs(dir: string): Promise<Map<string, Uint8Array>> {
  return new Map([...await files(dir)].filter(([n]) => n.endsWith(".png")));
}

/** The lines of every index file of `dir`, sorted (shards write their own files, in their own order). */
export async function indexLines(dir: string): Promise<string[]> {
  const lines = [];
  for (const [name, bytes] of await files(dir)) {
    if (name.endsWith(".jsonl")) lines.push(...new TextDecoder().decode(bytes).split("\n").filter(Boolean));
  }
  return lines.sort();
}

export function noStackTrace(text: string): void {
  if (/^\s+at .*:\d+:\d+\)?$/m.test(text)) throw new Error(`printed a stack trace:\n${text}`);
}
