/**
 * @file The README stays true: its bundle and library examples run in Deno as written (shell commands
 * through `sh`, TypeScript blocks through `deno eval` in the repository's folder), the diagnostics it
 * shows are what `varc` prints, every shell block sets the variables it uses and names files that
 * exist, `varc` and `convert_pth.py` command lines use only flags their `--help` lists, and the layout
 * table names every folder of the repository and every `varc` command.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "../cli/varc.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const README = await Deno.readTextFile(join(ROOT, "README.md"));

interface Block {
  readonly lang: string;
  readonly text: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The `##` section it is in. */
  readonly section: string;
}

/** The fenced code blocks of a Markdown text (fences may be indented, as in list items). */
function blocks(markdown: string): Block[] {
  const out: Block[] = [];
  const lines = markdown.split("\n");
  let section = "";
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.startsWith("## ")) section = lines[i]!.slice(3);
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length, body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++) body.push(lines[j]!.slice(indent));
    out.push({ lang: open[2]!, text: body.join("\n"), line: i + 1, section });
    i = j;
  }
  return out;
}

const BLOCKS = blocks(README);

function inSection(section: string): Block[] {
  const found = BLOCKS.filter((b) => b.section === section);
  assert.ok(found.length > 0, `README has no code blocks under "## ${section}"`);
  return found;
}

/** A shell block's commands: continuation lines joined, comments and blank lines dropped. */
function commands(block: Block): string[] {
  return block.text.replace(/\\\n\s*/g, " ").split("\n").map((l) => l.replace(/(^|\s)#.*$/, "").trim())
    .filter((l) => l !== "");
}

/** Runs a shell block as written, with this Deno in place of `npx -y deno@…`, in the repository's folder. */
async function runShell(block: Block): Promise<{ code: number; out: string; err: string }> {
  const script = block.text.replaceAll(/npx -y deno@[0-9.]+/g, `'${Deno.execPath()}'`);
  const r = await new Deno.Command("sh", { args: ["-c", script], cwd: ROOT, env: { NO_COLOR: "1" } }).output();
  const text = new TextDecoder();
  return { code: r.code, out: text.decode(r.stdout), err: text.decode(r.stderr) };
}

/** Runs a TypeScript block as a module in the repository's folder (`deno eval`: relative imports from there). */
async function runTs(block: Block): Promise<string> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", block.text],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder();
  const [out, err] = [text.decode(r.stdout), text.decode(r.stderr)];
  assert.equal(r.code, 0, `README block at line ${block.line} failed:\n${out}${err}`);
  return out;
}

/** What `varc ARGS` prints on stdout, run in this process. */
async function varcOutput(...args: string[]): Promise<string> {
  const out: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  try {
    assert.equal(await main(args), 0, `varc ${args.join(" ")}`);
  } finally {
    console.log = log;
  }
  return out.join("\n");
}

/** The `--flags` a help text lists. */
function helpFlags(help: string): Set<string> {
  return new Set([...help.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!));
}

/** The `varc` commands its usage lists. */
async function varcCommands(): Promise<string[]> {
  const usage = await varcOutput("--help");
  return [...usage.split("Commands:\n")[1]!.matchAll(/^ {2}([a-z]+) /gm)].map((m) => m[1]!);
}

Deno.test("README: the bundle example runs in Deno as written (bare file paths, progress, an image)", async () => {
  const [sh, ts] = [
    inSection("Bundling and the browser").find((b) => b.lang === "sh")!,
    inSection("Bundling and the browser").find((b) => b.lang === "ts")!,
  ];
  assert.match(sh.text, /task varc bundle .* --out out\/tiny/);
  assert.match(ts.text, /from "\.\/out\/tiny\/model\.js"/);
  assert.match(ts.text, /load\(\{ var: `\$\{F\}\/var\.safetensors`/, "load() is given file paths");
  const bundled = await runShell(sh);
  assert.equal(bundled.code, 0, bundled.out + bundled.err);
  const out = await runTs(ts);
  const fixture = join(ROOT, "tests/fixtures/var_tiny_a");
  for (const file of ["var", "vae"] as const) {
    const size = (await Deno.stat(join(fixture, `${file}.safetensors`))).size;
    assert.ok(out.includes(`${file} ${size} ${size}\n`), `no final progress line for ${file}:\n${out}`);
  }
  assert.match(out, /^256×256 image, 262144 RGBA bytes$/m);
});

Deno.test("README: the library example runs through the package's export map and prints what its comment says", async () => {
  const block = inSection("As a library").find((b) => b.lang === "ts")!;
  assert.match(block.text, /from "@varc\/varc\/compiler"/);
  assert.match(block.text, /from "@varc\/varc\/runtime"/);
  const said = /console\.log\(.*\); \/\/ (.+)$/m.exec(block.text)?.[1];
  assert.ok(said, "the block's console.log has a comment with its output");
  const out = await runTs(block);
  assert.deepEqual(JSON.parse(out.trim().replaceAll(/\s+/g, "")), JSON.parse(said));
});

Deno.test("README: the diagnostics shown are what varc prints for examples/bad.var.ts", async () => {
  const tour = inSection("A short tour");
  const at = tour.findIndex((b) => b.lang === "sh" && b.text.includes("examples/bad.var.ts"));
  assert.ok(at >= 0 && tour[at + 1]?.lang === "", "a sh block running examples/bad.var.ts, then its output");
  const r = await runShell(tour[at]!);
  assert.equal(r.code, 1, "a spec error exits with status 1");
  const printed = r.err.split("\n").filter((l) => !l.startsWith("Task varc ")).join("\n").trim();
  assert.equal(printed, tour[at + 1]!.text.trim());
});

Deno.test("README: each shell block sets the variables it uses and names files that exist", async () => {
  const top = new Set((await trackedFiles()).filter((f) => f.includes("/")).map((f) => f.split("/")[0]!));
  const problems: string[] = [];
  for (const block of BLOCKS.filter((b) => b.lang === "sh")) {
    const vars = new Map<string, string>();
    for (const line of commands(block)) {
      const set = /^([A-Za-z_]\w*)=(\S*)$/.exec(line);
      if (set) vars.set(set[1]!, set[2]!);
      const loop = /^for ([A-Za-z_]\w*) in /.exec(line);
      if (loop) vars.set(loop[1]!, "");
      for (const m of line.matchAll(/\$\{?([A-Za-z_]\w*)/g)) {
        if (!vars.has(m[1]!)) problems.push(`line ${block.line}: $${m[1]} is used but not set in this block`);
      }
      const words = line.replaceAll(/\$\{?([A-Za-z_]\w*)\}?/g, (_, v) => vars.get(v) ?? "").split(/\s+/);
      words.forEach((word, i) => {
        const path = word.replace(/^['"]|['"]$/g, "");
        if (!top.has(path.split("/")[0]!) || !path.includes("/") || words[i - 1] === "--out") return;
        if (!existsSync(join(ROOT, path))) problems.push(`line ${block.line}: ${path} does not exist`);
      });
    }
  }
  assert.deepEqual(problems, []);
});

/** The repository's files (`git ls-files`). */
async function trackedFiles(): Promise<string[]> {
  const r = await new Deno.Command("git", { args: ["ls-files"], cwd: ROOT }).output();
  return new TextDecoder().decode(r.stdout).split("\n").filter((f) => f !== "");
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("README: varc, deno task and convert_pth.py command lines use only what exists", async () => {
  const known = await varcCommands();
  const tasks = Object.keys(JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).tasks);
  const help = new Map<string, Set<string>>();
  const python = await pythonHelp();
  const problems: string[] = [];
  let varcLines = 0, convertLines = 0;
  for (const block of BLOCKS.filter((b) => b.lang === "sh")) {
    for (const line of commands(block)) {
      const task = /\bdeno(?:@[0-9.]+)? task ([\w:]+)/.exec(line)?.[1];
      if (task && !tasks.includes(task)) problems.push(`line ${block.line}: no task "${task}"`);
      const flags = [...line.matchAll(/(?<=\s)--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!);
      const varc = /\btask varc ([a-z]+)/.exec(line)?.[1];
      if (varc) {
        varcLines++;
        if (!known.includes(varc)) {
          problems.push(`line ${block.line}: no command "varc ${varc}"`);
          continue;
        }
        if (!help.has(varc)) help.set(varc, helpFlags(await varcOutput(varc, "--help")));
        for (const f of flags) {
          if (!help.get(varc)!.has(f)) problems.push(`line ${block.line}: varc ${varc} has no --${f}`);
        }
      }
      if (/tools\/convert_pth\.py/.test(line)) {
        convertLines++;
        if (python === undefined) continue;
        for (const f of flags) if (!python.has(f)) problems.push(`line ${block.line}: convert_pth.py has no --${f}`);
      }
    }
  }
  assert.ok(varcLines >= 10 && convertLines >= 2, `${varcLines} varc and ${convertLines} convert_pth.py lines`);
  assert.deepEqual(problems, []);
  if (python === undefined) console.log("convert_pth.py flags not checked: no python3 on PATH");
});

/** The flags `python3 tools/convert_pth.py --help` lists (undefined without python3). */
async function pythonHelp(): Promise<Set<string> | undefined> {
  let r;
  try {
    r = await new Deno.Command("python3", { args: ["tools/convert_pth.py", "--help"], cwd: ROOT }).output();
  } catch {
    return undefined;
  }
  const text = new TextDecoder().decode(r.stdout);
  assert.equal(r.code, 0, `convert_pth.py --help: ${new TextDecoder().decode(r.stderr)}`);
  return helpFlags(text);
}

Deno.test("README: the layout table names every folder of the repository, and the cli row every command", async () => {
  const table = README.slice(README.indexOf("## Layout\n"), README.indexOf("\n## ", README.indexOf("## Layout\n") + 1));
  const rows = table.split("\n").filter((l) => l.startsWith("| `")).map((l) => {
    const [path, what] = l.split("|").slice(1, 3).map((c) => c.trim());
    return { paths: [...path!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!), what: what! };
  });
  const named = new Map(rows.flatMap((r) => r.paths.map((p) => [p.replace(/\/$/, ""), r.what] as const)));
  const problems: string[] = [];
  for (const path of named.keys()) if (!existsSync(join(ROOT, path))) problems.push(`${path} does not exist`);

  const files = await trackedFiles();
  const folders = new Set<string>();
  for (const f of files) {
    const parts = f.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) folders.add(parts.slice(0, i).join("/"));
  }
  for (const folder of [...folders].sort()) {
    if (folder.split("/").includes("__pycache__") || named.has(folder)) continue;
    // Otherwise its nearest named ancestor's row must name the subfolder it is in (`lib/`, `explain/`).
    const parts = folder.split("/");
    const at = parts.map((_, i) => parts.slice(0, i).join("/")).findLastIndex((a) => named.has(a));
    if (at < 1 || !named.get(parts.slice(0, at).join("/"))!.includes(`\`${parts[at]}/\``)) {
      problems.push(`folder ${folder}/ is not in the table`);
    }
  }
  const cli = named.get("cli") ?? "";
  for (const command of await varcCommands()) {
    if (!new RegExp(`\`(varc )?${command}\``).test(cli)) problems.push(`the cli row does not name "varc ${command}"`);
  }
  assert.deepEqual(problems, []);
});
