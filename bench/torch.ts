/**
 * @file `deno task bench:torch --var-repo DIR [--python PY] [--rounds N] [--threads N] [--quick]
 * [--weights DIR] [--out FILE]`: varc side by side with the official PyTorch VAR code on this CPU.
 *
 * Both sides generate 256-px images from the same VAR d16 + VQ-VAE checkpoints (cfg 1.5, top-k 900,
 * top-p 0.96): batch 1 (class 0) and batch 4 (classes 0–3). The checkpoints are random weights
 * made by the official `build_vae_var` (seeded) through `bench/torch_var.py`, converted with
 * `tools/convert_pth.py` as real checkpoints are, and cached under `--weights` (default
 * out/bench_torch/weights/; delete it to rebuild them). Each round runs one process per side,
 * varc (`bench/generate.ts`) then PyTorch (`bench/torch_var.py run`), each with one untimed
 * warm-up generation; compile and load times are reported apart from the per-image times.
 * Medians over `--rounds` (default 3).
 *
 * Needs, and installs nothing: torch (Debian python3-torch) using OpenBLAS (libopenblas0-pthread)
 * for `--python` (default /usr/bin/python3 where it exists, else python3), and a checkout of
 * https://github.com/FoundationVision/VAR given as `--var-repo`. Without one of them it prints one
 * line per missing requirement and exits 0.
 *
 * Writes bench/TORCH_RESULTS.md (with `--quick`: batch 1, one round, out/bench_torch/TORCH_RESULTS.md).
 */
import { parseArgs } from "node:util";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    "var-repo": { type: "string" },
    python: { type: "string" },
    rounds: { type: "string" },
    threads: { type: "string" },
    quick: { type: "boolean" },
    weights: { type: "string" },
    out: { type: "string" },
  },
});
const ROOT = new URL("../", import.meta.url).pathname;
const QUICK = flags.quick ?? false;
const ROUNDS = QUICK ? 1 : Number(flags.rounds ?? 3);
const CORES = navigator.hardwareConcurrency;
const THREADS = Number(flags.threads ?? CORES);
const BATCHES: number[][] = QUICK ? [[0]] : [[0], [0, 1, 2, 3]];
const SPEC = "examples/var_d16.var.ts";
// paths given as flags are relative to the working directory, the defaults to the project
const WEIGHTS = flags.weights ? absolute(flags.weights) : `${ROOT}out/bench_torch/weights`;
const OUT = flags.out
  ? absolute(flags.out)
  : `${ROOT}${QUICK ? "out/bench_torch/TORCH_RESULTS.md" : "bench/TORCH_RESULTS.md"}`;
const WEIGHTS_META = { seed: 0, depth: 16, patchNums: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16] };
for (const [name, v] of [["--rounds", ROUNDS], ["--threads", THREADS]] as const) {
  if (!(Number.isInteger(v) && v >= 1)) throw new Error(`${name} must be an integer ≥ 1, got ${v}`);
}

function absolute(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function loadavg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "n/a";
  }
}

/** The CPU model and its widest SIMD extension, from /proc/cpuinfo. */
function cpuModel(): string {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    const flags = new Set(info.match(/^flags\s*:\s*(.+)$/m)?.[1]?.split(" ") ?? []);
    const simd = flags.has("avx512f") ? "AVX-512" : flags.has("avx2") ? "AVX2" : flags.has("avx") ? "AVX" : "SSE";
    return `${info.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? "unknown CPU"} (${simd})`;
  } catch {
    return "unknown CPU";
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Runs a command; its stdout (or stdout's last line) parsed as JSON, or why it failed. */
async function runJson<T>(cmd: string, args: string[], env: Record<string, string>): Promise<T | string> {
  let out;
  try {
    out = await new Deno.Command(cmd, { args, cwd: ROOT, env, stdin: "null" }).output();
  } catch (e) {
    return `could not start: ${(e as Error).message}`;
  }
  const text = new TextDecoder();
  const stdout = text.decode(out.stdout).trim();
  if (!out.success) {
    const lines = text.decode(out.stderr).trim().split("\n").filter((l) => !/^(scale|warm-up) /.test(l));
    return `failed: ${(lines.findLast((l) => /error|exception/i.test(l)) ?? lines.at(-1) ?? "no output").trim()}`;
  }
  // bench/generate.ts prints one indented object; bench/torch_var.py ends with a one-line one
  for (const text of [stdout, stdout.split("\n").at(-1)!]) {
    try {
      return JSON.parse(text) as T;
    } catch { /* try the last line */ }
  }
  return `failed: no JSON on stdout (${stdout.slice(-200)})`;
}

// ---------------------------------------------------------------------------------------------
// Requirements: each missing one is a line, and the benchmark is skipped.

const PYTHON = flags.python ?? (exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
const PY_ENV = {
  OMP_NUM_THREADS: String(THREADS),
  OPENBLAS_NUM_THREADS: String(THREADS),
  PYTHONDONTWRITEBYTECODE: "1",
};

interface Probe {
  error?: string;
  torch: string;
  python: string;
  blasInfo: string;
  cpuCapability: string;
  blasLibraries: string[];
  mkldnn: boolean;
  sdpa: boolean;
}

const skips: string[] = [];
const probe = await runJson<Probe>(PYTHON, ["bench/torch_var.py", "probe"], PY_ENV);
if (typeof probe === "string") {
  skips.push(`skipped: ${PYTHON} ${probe}; pass --python PATH to a Python 3 with torch`);
} else if (probe.error) {
  skips.push(`skipped: ${probe.error} with ${PYTHON}; install Debian python3-torch or pass --python PATH`);
} else if (!probe.blasLibraries.some((l) => /openblas/i.test(l))) {
  skips.push(
    `skipped: torch ${probe.torch} in ${PYTHON} does not use OpenBLAS ` +
      `(BLAS in use: ${probe.blasLibraries.join(", ") || probe.blasInfo}); install Debian libopenblas0-pthread`,
  );
}
const REPO = flags["var-repo"] === undefined ? undefined : absolute(flags["var-repo"]);
if (REPO === undefined) {
  skips.push(
    "skipped: no checkout of the official VAR code; pass --var-repo DIR " +
      "(git clone https://github.com/FoundationVision/VAR)",
  );
} else if (!exists(`${REPO}/models/var.py`) || !exists(`${REPO}/models/__init__.py`)) {
  skips.push(`skipped: ${flags["var-repo"]} is not a checkout of the official VAR code (no models/var.py)`);
}
if (skips.length) {
  for (const s of skips) console.log(s);
  Deno.exit(0);
}
const torchInfo = probe as Probe;
const repo = REPO!;

// ---------------------------------------------------------------------------------------------
// Checkpoints: official names and init, written once and reused while the recipe is unchanged.

async function ensureWeights(): Promise<void> {
  const metaPath = `${WEIGHTS}/weights.json`;
  const files = [`${WEIGHTS}/var.safetensors`, `${WEIGHTS}/vae.safetensors`];
  try {
    const meta = JSON.parse(Deno.readTextFileSync(metaPath));
    if (JSON.stringify(meta.recipe) === JSON.stringify(WEIGHTS_META) && files.every(exists)) {
      console.log(`checkpoints: reusing ${WEIGHTS}`);
      return;
    }
  } catch { /* none yet */ }
  console.log(`checkpoints: building the official VQVAE + VAR d16 (seed ${WEIGHTS_META.seed}) into ${WEIGHTS}`);
  await Deno.mkdir(WEIGHTS, { recursive: true });
  const made = await runJson<Record<string, number>>(
    PYTHON,
    ["bench/torch_var.py", "weights", "--var-repo", repo, "--out", WEIGHTS, "--seed", String(WEIGHTS_META.seed)],
    PY_ENV,
  );
  if (typeof made === "string") throw new Error(`bench/torch_var.py weights: ${made}`);
  // the conversion README.md gives for the official checkpoints
  const conversions = [
    ["var", "attn_bias_for_masking"],
    ["vae", "encoder.*", "quant_conv.*"],
  ];
  for (const [name, ...drop] of conversions) {
    const pth = `${WEIGHTS}/${name}.pth`;
    const r = await new Deno.Command(PYTHON, {
      args: ["tools/convert_pth.py", pth, `${WEIGHTS}/${name}.safetensors`, "--drop", ...drop],
      cwd: ROOT,
      env: PY_ENV,
    }).output();
    if (!r.success) throw new Error(`tools/convert_pth.py ${pth}: ${new TextDecoder().decode(r.stderr).trim()}`);
    await Deno.remove(pth);
  }
  await Deno.writeTextFile(metaPath, JSON.stringify({ recipe: WEIGHTS_META, ...made }, null, 2) + "\n");
}

// ---------------------------------------------------------------------------------------------
// Rounds.

/** One side's timing of one round, in seconds. */
interface Sample {
  beforeDecode: number;
  decode: number;
  total: number;
  compile?: number;
  load: number;
  peakRssGiB: number;
}

interface VarcOut {
  threads: number;
  seconds: { compile: number; load: number; transformer: number; sampling: number; fhat: number; decode: number };
  peakRssGiB: number;
}

interface TorchOut {
  torch: string;
  threads: number;
  blasLibraries: string[];
  attention: string;
  seconds: { load: number; beforeDecode: number; decode: number; total: number };
  peakRssGiB: number;
}

const SIDES = ["varc", "PyTorch"] as const;
type Side = typeof SIDES[number];
let varcThreads: number | undefined, torchRun: TorchOut | undefined;

async function runVarc(labels: number[]): Promise<Sample | string> {
  const r = await runJson<VarcOut>(Deno.execPath(), [
    "run",
    "-A",
    "bench/generate.ts",
    SPEC,
    "--labels",
    labels.join(","),
    "--var",
    `${WEIGHTS}/var.safetensors`,
    "--vae",
    `${WEIGHTS}/vae.safetensors`,
    "--warmup",
    "1",
    "--threads",
    String(THREADS),
  ], { NO_COLOR: "1" });
  if (typeof r === "string") return r;
  varcThreads = r.threads;
  const s = r.seconds;
  const beforeDecode = s.transformer + s.sampling + s.fhat;
  return {
    beforeDecode,
    decode: s.decode,
    total: beforeDecode + s.decode,
    compile: s.compile,
    load: s.load,
    peakRssGiB: r.peakRssGiB,
  };
}

async function runTorch(labels: number[]): Promise<Sample | string> {
  const r = await runJson<TorchOut>(PYTHON, [
    "bench/torch_var.py",
    "run",
    "--var-repo",
    repo,
    "--weights",
    WEIGHTS,
    "--labels",
    labels.join(","),
    "--threads",
    String(THREADS),
    "--warmup",
    "1",
  ], PY_ENV);
  if (typeof r === "string") return r;
  torchRun = r;
  return { ...r.seconds, peakRssGiB: r.peakRssGiB };
}

async function git(...args: string[]): Promise<string> {
  try {
    const r = await new Deno.Command("git", { args, cwd: ROOT, stderr: "null" }).output();
    return r.success ? new TextDecoder().decode(r.stdout).trim() : "";
  } catch {
    return "";
  }
}
const loadAtStart = loadavg();
const commitAtStart = await git("rev-parse", "--short", "HEAD");
const started = new Date();
await ensureWeights();
const samples = new Map<string, Sample[]>(); // `${batch}|${side}`
const failures: string[] = [];
const s2 = (x: number | undefined) => x === undefined ? "–" : x.toFixed(2);
for (const labels of BATCHES) {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const side of SIDES) {
      const r = side === "varc" ? await runVarc(labels) : await runTorch(labels);
      const key = `${labels.length}|${side}`;
      if (typeof r === "string") {
        failures.push(`batch ${labels.length}, round ${round}, ${side}: ${r}`);
        console.log(`batch ${labels.length} round ${round}/${ROUNDS} ${side}: ${r}`);
        continue;
      }
      samples.set(key, [...(samples.get(key) ?? []), r]);
      console.log(
        `batch ${labels.length} round ${round}/${ROUNDS} ${side}: total ${s2(r.total)} s ` +
          `(transformer + sampling ${s2(r.beforeDecode)}, decode ${s2(r.decode)}; load ${s2(r.load)} s)`,
      );
    }
  }
}
const loadAtEnd = loadavg();

// ---------------------------------------------------------------------------------------------
// Report.

type Stage = "beforeDecode" | "decode" | "total";
const STAGES: [Stage, string][] = [
  ["beforeDecode", "transformer + sampling"],
  ["decode", "decode"],
  ["total", "total"],
];
const med = (B: number, side: Side, f: (s: Sample) => number | undefined): number | undefined => {
  const xs = (samples.get(`${B}|${side}`) ?? []).map(f).filter((x): x is number => x !== undefined);
  return xs.length ? median(xs) : undefined;
};
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? "–" : `${(a / b).toFixed(2)}×`;

const main: string[] = [
  "| batch | stage | varc (s) | PyTorch (s) | varc / PyTorch |",
  "| ----- | ----- | -------- | ----------- | -------------- |",
];
for (const labels of BATCHES) {
  const B = labels.length;
  for (const [stage, name] of STAGES) {
    const v = med(B, "varc", (s) => s[stage]), t = med(B, "PyTorch", (s) => s[stage]);
    main.push(`| ${B} | ${name} | ${s2(v)} | ${s2(t)} | ${ratio(v, t)} |`);
  }
  const v = med(B, "varc", (s) => s.total), t = med(B, "PyTorch", (s) => s.total);
  const ips = (x: number | undefined) => x === undefined ? undefined : B / x;
  main.push(
    `| ${B} | images / s | ${ips(v)?.toFixed(4) ?? "–"} | ${ips(t)?.toFixed(4) ?? "–"} | ${ratio(ips(v), ips(t))} |`,
  );
}

const setup: string[] = [
  "| batch | side | compile (s) | load (s) | peak RSS (GiB) |",
  "| ----- | ---- | ----------- | -------- | -------------- |",
];
for (const labels of BATCHES) {
  for (const side of SIDES) {
    const B = labels.length;
    setup.push(
      `| ${B} | ${side} | ${side === "varc" ? s2(med(B, side, (s) => s.compile)) : "–"} | ` +
        `${s2(med(B, side, (s) => s.load))} | ${s2(med(B, side, (s) => s.peakRssGiB))} |`,
    );
  }
}

const rounds: string[] = [
  "| batch | round | side | transformer + sampling (s) | decode (s) | total (s) |",
  "| ----- | ----- | ---- | -------------------------- | ---------- | --------- |",
];
for (const labels of BATCHES) {
  const B = labels.length;
  for (let i = 0; i < ROUNDS; i++) {
    for (const side of SIDES) {
      const r = samples.get(`${B}|${side}`)?.[i];
      if (r) rounds.push(`| ${B} | ${i + 1} | ${side} | ${s2(r.beforeDecode)} | ${s2(r.decode)} | ${s2(r.total)} |`);
    }
  }
}

const commitAtEnd = await git("rev-parse", "--short", "HEAD");
const officialCommit = await git("-C", repo, "rev-parse", "--short", "HEAD");
const dirty = (await git("status", "--porcelain", "--", "runtime", "compiler", "examples")) !== "";
const weightsMeta = JSON.parse(Deno.readTextFileSync(`${WEIGHTS}/weights.json`));
const openblas = (torchRun?.blasLibraries ?? torchInfo.blasLibraries).filter((l) => /openblas/i.test(l));
const memGiB = (() => {
  try {
    return `${(Deno.systemMemoryInfo().total / 2 ** 30).toFixed(0)} GiB RAM`;
  } catch {
    return "RAM unknown";
  }
})();
const command = `deno task bench:torch --var-repo DIR${QUICK ? " --quick" : ""}` +
  `${!QUICK && ROUNDS !== 3 ? ` --rounds ${ROUNDS}` : ""}${flags.threads ? ` --threads ${THREADS}` : ""}`;

// others may commit while the rounds run
const varcAbout = `Commit ${commitAtStart || "unknown"}` +
  (commitAtEnd !== commitAtStart ? ` at the start, ${commitAtEnd} at the end` : "") +
  (dirty ? " with uncommitted changes in runtime/, compiler/ or examples/" : "") +
  `, Deno ${Deno.version.deno}; \`${SPEC}\` compiled for the js target in each process; ` +
  `WebAssembly SIMD GEMM on ${varcThreads ?? "?"} threads.`;
const blas = openblas.length ? `OpenBLAS (${openblas.at(-1)})` : "not OpenBLAS";
const attention = (torchRun?.attention ?? "?") +
  (torchInfo.sdpa ? "" : " (this torch has no scaled_dot_product_attention)");
const torchAbout = `torch ${torchRun?.torch ?? torchInfo.torch} (Python ${torchInfo.python}, \`${PYTHON}\`), ` +
  `${torchRun?.threads ?? THREADS} threads (torch.set_num_threads, OMP_NUM_THREADS and OPENBLAS_NUM_THREADS), ` +
  `BLAS: ${blas}, CPU kernels ${torchInfo.cpuCapability}, oneDNN ${torchInfo.mkldnn ? "available" : "unavailable"}; ` +
  `float32 under torch.inference_mode, as the official demo (its autocast is CUDA-only); attention: ${attention}. ` +
  `The official code (${repo}, ${officialCommit ? `commit ${officialCommit}` : "no git metadata"}) is imported ` +
  "unchanged, with a stub for huggingface_hub when it is missing.";
const count = (n: number) => n.toLocaleString("en-US");
const modelAbout = `The official VAR d16 (${count(weightsMeta.varParams)} parameters) and VQ-VAE ` +
  `(${count(weightsMeta.vaeDecodeParams ?? weightsMeta.vaeParams)} without the encoder, which generation does not ` +
  `use), random weights from the official \`build_vae_var\` and \`init_weights\` (seed ${WEIGHTS_META.seed}; the ` +
  "VQ-VAE, which it leaves uninitialised, gets PyTorch's default layer init), converted with `tools/convert_pth.py`; " +
  "both sides load the same safetensors files. 256 px, cfg 1.5, top-k 900, top-p 0.96, seed 0 (each side draws from " +
  "its own generator, so the tokens differ; the work does not). Each round runs one process per side, varc then " +
  "PyTorch, each with one untimed warm-up generation of the same batch; " +
  (ROUNDS === 1 ? "one round per batch." : `${ROUNDS} rounds per batch, medians.`);

const md = [
  "# varc against the official PyTorch VAR code (CPU)",
  "",
  `Generated by \`${command}\` (\`bench/torch.ts\`) on ${started.toISOString().slice(0, 16).replace("T", " ")} UTC; ` +
  "do not edit by hand.",
  "",
  `**Machine.** ${cpuModel()}, ${CORES} logical cores, ${memGiB}, ${Deno.build.os}/${Deno.build.arch}. ` +
  `Load average (1/5/15 min): ${loadAtStart} at the start, ${loadAtEnd} at the end.`,
  "",
  `**varc.** ${varcAbout}`,
  "",
  `**PyTorch.** ${torchAbout}`,
  "",
  `**Model and settings.** ${modelAbout}`,
  "",
  "**Stages.** _transformer + sampling_ is everything before the decode: varc's transformer, sampling and f̂ " +
  "timings (`runtime/generate.ts`); for PyTorch, `autoregressive_infer_cfg` minus its final " +
  "`vae_proxy[0].fhat_to_img`, which is timed apart as _decode_ (VQ-VAE decode). _images / s_ is the batch over " +
  "the total; its ratio above 1 means varc is faster, while for the seconds rows a ratio below 1 does.",
  "",
  ...main,
  "",
  "## Setup (not in the per-image times)",
  "",
  "varc compiles the spec and loads the checkpoints; PyTorch builds the official modules and loads the same " +
  "checkpoints. Peak RSS is each process's high-water mark, warm-up included.",
  "",
  ...setup,
  "",
  "## Rounds",
  "",
  ...rounds,
  ...(failures.length ? ["", "## Failures", "", ...failures.map((f) => `- ${f}`)] : []),
  "",
].join("\n");

console.log("");
console.log(main.join("\n"));
for (const f of failures) console.log(`failed: ${f}`);
await Deno.mkdir(OUT.slice(0, OUT.lastIndexOf("/")), { recursive: true });
await Deno.writeTextFile(OUT, md);
// aligned tables and wrapped prose, as `deno fmt` leaves them
const fmt = ["fmt", "--quiet", "--no-config", "--line-width", "120", OUT];
if (!(await new Deno.Command(Deno.execPath(), { args: fmt }).output()).success) {
  console.log(`deno fmt failed on ${OUT}`);
}
console.log(`wrote ${OUT}`);
