/** @file `varc compile`: spec -> DIR/model.js, model.d.ts, model.src.ts, report.json, report.md. */
import { prepareOutputDir, writeAtomic } from "./output.ts";
import { join } from "node:path";
import { compile, type Compiled, type CompileReport, explainMarkdown, UnknownTargetError } from "../compiler/mod.ts";
import { analysisOptions } from "./explain.ts";
import { LOWERING_FLAGS, LOWERING_HELP } from "./lowering.ts";
import { defaultPipeline } from "../compiler/pipeline.ts";
import type { Plugin } from "../compiler/plugin.ts";
import { isTargetName, targetChoices, type TargetName } from "../compiler/targets.ts";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type Command, grouped, passList, required, specArg, terminalText, UsageError } from "./common.ts";

/** Reads `--target` (a built-in target, or "auto": WebGPU when an adapter exists). */
export async function targetFlag(v: unknown): Promise<TargetName> {
  const t = v ?? "js";
  if (t !== "auto") {
    if (isTargetName(t)) return t;
    throw new UsageError(`--target must be ${targetChoices(["auto"])}, got ${terminalText(String(t))}`);
  }
  const adapter = await findAdapter();
  console.error(adapter ? `target auto: WebGPU on ${adapter}` : "target auto: no WebGPU adapter found, using js");
  return adapter ? "webgpu" : "js";
}

/**
 * A `--target` of `compile`: a built-in target or "auto" (`targetFlag`), or, with plugins, any other
 * name, which `compile` looks up among the backends the plugins register (their `setup` runs once,
 * there, with the compile's options; see `unknownTarget`).
 */
async function compileTarget(v: unknown, plugins: readonly Plugin[]): Promise<string> {
  if (v === undefined || isTargetName(v) || v === "auto") return await targetFlag(v);
  if (plugins.length > 0) return String(v);
  const hint = " (a plugin's backend needs --plugin FILE)";
  throw new UsageError(`--target must be ${targetChoices(["auto"])}, got ${terminalText(String(v))}${hint}`);
}

/** The usage error for a `--target` that neither a built-in target nor a plugin's backend serves. */
function unknownTarget(e: UnknownTargetError): UsageError {
  const choices = targetChoices(["auto", ...e.available.filter((t) => !isTargetName(t))]);
  return new UsageError(`--target must be ${choices}, got ${terminalText(e.target)}`);
}

/** The plugins of `--plugin FILE`: its default export, one plugin or a list. */
async function loadPlugins(file: string): Promise<Plugin[]> {
  const what = `--plugin ${terminalText(file)}`;
  let mod: { default?: unknown };
  try {
    await Deno.stat(file);
    mod = await import(pathToFileURL(resolve(file)).href);
  } catch (e) {
    throw new UsageError(`${what}: cannot load it: ${terminalText((e as Error).message.split("\n")[0] ?? "")}`);
  }
  const list = Array.isArray(mod.default) ? mod.default : [mod.default];
  const bad = list.findIndex((p) =>
    typeof (p as Plugin)?.name !== "string" || typeof (p as Plugin)?.setup !== "function"
  );
  if (list.length === 0 || bad >= 0) {
    throw new UsageError(`${what}: its default export must be a plugin { name, setup(build) } or a list of them`);
  }
  return list as Plugin[];
}

/** A description of the WebGPU adapter, or undefined when there is none. */
export async function findAdapter(): Promise<string | undefined> {
  try {
    const adapter = await navigator.gpu?.requestAdapter();
    if (!adapter) return undefined;
    const info = adapter.info;
    return [
      info.description || info.device || info.vendor || "adapter",
      info.isFallbackAdapter ? "(fallback adapter)" : "",
    ]
      .filter(Boolean).join(" ");
  } catch {
    return undefined;
  }
}

export const compileCommand: Command = {
  summary: "Compile a spec into a JS module and a report",
  usage: `Usage: varc compile <spec.var.ts> --out DIR [options]

Writes DIR/model.js (bundled ES module), DIR/model.d.ts, DIR/model.src.ts (readable
generated source), DIR/report.json and DIR/report.md, and prints a summary.

Options:
  --out DIR                output directory (created if missing)
  --target T               js, webgpu, or auto (WebGPU when an adapter exists; default js),
                           or the name of a backend that a --plugin registers
  --plugin FILE            a module whose default export is a compiler plugin (or a list of them):
                           it may add passes and backends
  --var FILE               VAR checkpoint: bounds from its weights (τ read exactly)
  --vae FILE               VQ-VAE checkpoint (decoder bounds; needed by --calibrate)
  --calibrate N            measure attention norms over N sample generations (needs --var, --vae)
${LOWERING_HELP}
  --print-ir-after NAMES   print the IR after these passes (comma-separated, or "all")
  --list-passes            list the passes of the pipeline and exit
  --no-minify              keep the bundled module readable
  -h, --help               show this help`,
  options: {
    out: { type: "string" },
    target: { type: "string" },
    plugin: { type: "string" },
    var: { type: "string" },
    vae: { type: "string" },
    calibrate: { type: "string" },
    ...LOWERING_FLAGS,
    "print-ir-after": { type: "string" },
    "list-passes": { type: "boolean" },
    "no-minify": { type: "boolean" },
  },
  async run(values, positionals) {
    if (values["list-passes"]) {
      for (const p of defaultPipeline) console.log(`${p.name.padEnd(22)}${p.summary}`);
      return;
    }
    const spec = specArg(positionals);
    const out = required(values, "out");
    await prepareOutputDir(out, "--out", ["model.js", "model.d.ts", "model.src.ts", "report.json", "report.md"]);
    const plugins = values.plugin === undefined ? [] : await loadPlugins(values.plugin as string);
    const target = await compileTarget(values.target, plugins);
    const analysis = await analysisOptions(spec, values);
    const options = { ...analysis, target, minify: !values["no-minify"] };
    const compiled = await compile(spec, options, {
      plugins,
      hooks: { printIrAfter: passList(values["print-ir-after"]) },
    }).catch((e) => {
      throw e instanceof UnknownTargetError ? unknownTarget(e) : e;
    });
    await writeArtifacts(compiled, out);
    console.log(summary(compiled.report, out));
  },
};

/** Writes every artifact of a compiled model into `dir`. */
export async function writeArtifacts(c: Compiled, dir: string): Promise<void> {
  await prepareOutputDir(dir);
  await writeAtomic(join(dir, "model.js"), c.emitted.bundle);
  await writeAtomic(join(dir, "model.d.ts"), c.emitted.dts);
  await writeAtomic(join(dir, "model.src.ts"), c.emitted.source);
  await writeAtomic(join(dir, "report.json"), JSON.stringify(c.report, jsonNumbers, 2) + "\n");
  await writeAtomic(join(dir, "report.md"), reportMarkdown(c.report));
}

/** The lines `compile` prints. */
export function summary(r: CompileReport, out: string): string {
  return [
    `compiled ${r.name} (${r.spec}) for ${r.target}: ${r.nodes} IR nodes`,
    `  parameters: ${grouped(r.parameters.var)} (VAR, ${r.tensors.var} tensors) + ${
      grouped(r.parameters.vae)
    } (VQ-VAE pieces, ${r.tensors.vae} tensors)`,
    `  attention: ${
      r.attention.filter((a) => a.decision === "lowrank").length
    } of ${r.attention.length} blocks low-rank (see report.md or varc explain)`,
    `  wrote ${join(out, "model.js")}, model.d.ts, model.src.ts, report.json, report.md`,
  ].join("\n");
}

/** JSON has no Infinity: unbounded quantities are written as the string "Infinity". */
function jsonNumbers(_: string, v: unknown): unknown {
  return typeof v === "number" && !Number.isFinite(v) ? String(v) : v;
}

/** Inline Markdown code for any text: a fence longer than its longest backtick run, line breaks as spaces. */
export function mdCode(text: string): string {
  const flat = text.replace(/[\r\n]+/g, " ");
  const run = Math.max(0, ...(flat.match(/`+/g) ?? []).map((m) => m.length));
  const fence = "`".repeat(run + 1), pad = flat.startsWith("`") || flat.endsWith("`") ? " " : "";
  return `${fence}${pad}${flat}${pad}${fence}`;
}

function reportMarkdown(r: CompileReport): string {
  const rows = r.passes.map((p) => `| ${p.name} | ${p.ms.toFixed(1)} |`).join("\n");
  return `# ${r.name}

- spec: \`${r.spec}\`
- target: ${r.target}
- IR nodes: ${r.nodes}
- VAR parameters: ${grouped(r.parameters.var)} in ${r.tensors.var} tensors
- VQ-VAE tensors read by this model: ${grouped(r.parameters.vae)} values in ${r.tensors.vae} tensors

| pass | ms |
|---|---|
${rows}

## Attention

${explainMarkdown(r.attention)}
`;
}
