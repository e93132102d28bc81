/**
 * @file The fuzz driver: generates cases deterministically from (seed, fuzzer, index), runs them in
 * worker threads with a per-case time bound (or in this thread), tallies outcomes per mutation
 * class, and keeps every failing mutant under the output directory.
 *
 * The mutators and oracles live in `tests/fuzz/`: `spec_fuzz.ts` (DSL specs through the front end
 * and the pass pipeline), `weights_fuzz.ts` (safetensors files through the reader and the weight
 * binder) and `cli_fuzz.ts` (`varc` command lines in hostile situations).
 */
import { join, resolve } from "node:path";
import { LIMITS } from "../compiler/dsl/interp.ts";
import {
  type Artifact,
  type CaseResult,
  caseRng,
  describeError,
  type FuzzKind,
  type Outcome,
  ROOT,
} from "../tests/fuzz/common.ts";
import {
  loadSpecCorpus,
  makeSpecMutant,
  runSpecMutant,
  SPEC_CLASSES,
  specArtifact,
  type SpecCorpus,
} from "../tests/fuzz/spec_fuzz.ts";
import {
  CLI_CLASSES,
  cliArtifact,
  type CliCorpus,
  type CliMutant,
  loadCliCorpus,
  makeCliMutant,
  runCliMutant,
} from "../tests/fuzz/cli_fuzz.ts";
import {
  loadWeightsCorpus,
  makeWeightsMutant,
  runWeightsMutant,
  WEIGHTS_CLASSES,
  weightsArtifact,
  type WeightsCorpus,
} from "../tests/fuzz/weights_fuzz.ts";

export type { CaseResult, FuzzKind, Outcome } from "../tests/fuzz/common.ts";

/** Evaluation limits while fuzzing (var_d36 needs fewer than 500,000 steps; building one 2^20-element array costs 2^20). */
export const FUZZ_LIMITS: Partial<typeof LIMITS> = { steps: 4_000_000 };

/**
 * A command-line case that spawns a process (`atomic-writes`) may take this many times the time bound:
 * process start and module loading count too. Worker lanes wait as long for any command-line case.
 */
export const CLI_SPAWN_FACTOR = 3;

/** Options of a fuzz run. */
export interface FuzzOptions {
  /** Number of spec cases, of checkpoint cases and of command-line cases. */
  readonly spec: number;
  readonly weights: number;
  readonly cli: number;
  readonly seed: number;
  /** Worker threads; 0 runs every case in this thread (no way to stop a hang, only to time it). */
  readonly jobs: number;
  /** A case running longer than this is a hang (a failure). */
  readonly timeoutMs: number;
  /** Where failing mutants are written (created on the first failure). */
  readonly outDir: string;
  /** Run only these cases (e.g. to reproduce one). */
  readonly only?: readonly { kind: FuzzKind; index: number }[];
  /** Called with each finished case (progress). */
  readonly onResult?: (r: CaseResult, done: number, total: number) => void;
}

/** Everything a thread needs to build and judge cases. Corpora load on first use. */
export class FuzzContext {
  #spec?: SpecCorpus;
  #weights?: WeightsCorpus;
  #cli?: CliCorpus;
  constructor(readonly seed: number, readonly tmpDir: string) {}

  get spec(): SpecCorpus {
    return this.#spec ??= loadSpecCorpus(this.tmpDir);
  }

  get weights(): WeightsCorpus {
    return this.#weights ??= loadWeightsCorpus();
  }

  get cli(): CliCorpus {
    return this.#cli ??= loadCliCorpus(this.tmpDir);
  }

  /** The mutant of a case, as a file to keep in `dir`, with its class and seed. */
  mutant(kind: FuzzKind, index: number, dir: string): { cls: string; seed: string; artifact: Artifact } {
    const rng = caseRng(this.seed, kind, index);
    if (kind === "spec") {
      const m = makeSpecMutant(this.spec, rng);
      return { cls: m.cls, seed: m.seed, artifact: specArtifact(m, dir) };
    }
    if (kind === "cli") {
      const m = makeCliMutant(rng);
      return { cls: m.cls, seed: `${m.seed}: ${m.what}`, artifact: cliArtifact(m) };
    }
    const m = makeWeightsMutant(this.weights, rng, index);
    return { cls: m.cls, seed: m.seed, artifact: weightsArtifact(m) };
  }

  /** Builds, runs and judges one case. */
  async run(kind: FuzzKind, index: number, timeoutMs: number, artifactDir: string): Promise<CaseResult> {
    const rng = caseRng(this.seed, kind, index);
    let cls = "?", seed = "?";
    let t0 = performance.now();
    try {
      let verdict: { outcome: Outcome; detail: string };
      let keep: () => Artifact;
      let bound = timeoutMs;
      if (kind === "spec") {
        const m = makeSpecMutant(this.spec, rng);
        [cls, seed] = [m.cls, m.seed];
        t0 = performance.now(); // time the compiler, not the making of the mutant
        verdict = await runSpecMutant(m, this.spec, index);
        keep = () => specArtifact(m, artifactDir);
      } else if (kind === "cli") {
        const m: CliMutant = makeCliMutant(rng);
        [cls, seed] = [m.cls, `${m.seed}: ${m.what}`];
        if (m.limitKiB !== undefined) bound *= CLI_SPAWN_FACTOR;
        t0 = performance.now();
        verdict = await runCliMutant(m, this.cli, index, bound);
        keep = () => cliArtifact(m);
      } else {
        const m = makeWeightsMutant(this.weights, rng, index);
        [cls, seed] = [m.cls, m.seed];
        t0 = performance.now();
        verdict = runWeightsMutant(m, this.weights);
        keep = () => weightsArtifact(m);
      }
      const ms = performance.now() - t0;
      if (ms > bound && verdict.outcome !== "failure") {
        verdict = { outcome: "failure", detail: `hang: took ${(ms / 1000).toFixed(1)} s (${verdict.detail})` };
      }
      const bad = verdict.outcome === "failure" || verdict.outcome === "suspect";
      return { kind, index, cls, seed, ...verdict, ms, ...(bad ? { artifact: keep() } : {}) };
    } catch (e) {
      return {
        kind,
        index,
        cls,
        seed,
        outcome: "failure",
        detail: `fuzzer: ${describeError(e)}`,
        ms: performance.now() - t0,
      };
    }
  }
}

/** Runs `f` with some evaluation limits changed, then restores them. */
export function withLimits<T>(limits: Partial<typeof LIMITS>, f: () => T): T {
  const saved = { ...LIMITS };
  Object.assign(LIMITS, limits);
  try {
    return f();
  } finally {
    Object.assign(LIMITS, saved);
  }
}

/** Counts of one fuzzer, overall and per mutation class. */
export interface KindSummary {
  readonly cases: number;
  readonly outcomes: Record<Outcome, number>;
  readonly byClass: Record<string, Record<Outcome, number>>;
  /** Per mutation class: time in the code under test (ms) and hangs (failures that ran out of time). */
  readonly classTime: Record<string, { ms: number; hangs: number }>;
  /** ok cases split by detail (`parsed`, `lowered`, `bound`) and rejections by first diagnostic id / error. */
  readonly details: Record<string, number>;
  readonly ms: number;
}

/** The result of a fuzz run. */
export interface FuzzSummary {
  readonly seed: number;
  readonly jobs: number;
  readonly elapsedMs: number;
  readonly spec: KindSummary;
  readonly weights: KindSummary;
  readonly cli: KindSummary;
  /** Failures and suspects, with where their mutants were written. */
  readonly findings: readonly (CaseResult & { readonly file?: string })[];
  /** The slowest cases. */
  readonly slowest: readonly CaseResult[];
}

const zero = (): Record<Outcome, number> => ({ ok: 0, rejected: 0, suspect: 0, failure: 0 });

function emptySummary(classes: readonly string[]): KindSummary {
  return {
    cases: 0,
    outcomes: zero(),
    byClass: Object.fromEntries(classes.map((c) => [c, zero()])),
    classTime: {},
    details: {},
    ms: 0,
  };
}

/** Runs the spec, checkpoint and command-line fuzzers and returns their tallies; never throws for a bad case. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzSummary> {
  const tasks = options.only ?? [
    ...Array.from({ length: options.spec }, (_, index) => ({ kind: "spec" as const, index })),
    ...Array.from({ length: options.weights }, (_, index) => ({ kind: "weights" as const, index })),
    ...Array.from({ length: options.cli }, (_, index) => ({ kind: "cli" as const, index })),
  ];
  const outDir = resolve(options.outDir);
  const tmpDir = join(outDir, `tmp-${options.seed}-${Date.now()}`);
  const summary = {
    spec: emptySummary(SPEC_CLASSES),
    weights: emptySummary(WEIGHTS_CLASSES),
    cli: emptySummary(CLI_CLASSES),
    findings: [] as (CaseResult & { file?: string })[],
    slowest: [] as CaseResult[],
  };
  let done = 0;
  const record = (r: CaseResult) => {
    const k = summary[r.kind];
    (k as { cases: number }).cases++;
    (k as { ms: number }).ms += r.ms;
    k.outcomes[r.outcome]++;
    (k.byClass[r.cls] ??= zero())[r.outcome]++;
    const t = k.classTime[r.cls] ??= { ms: 0, hangs: 0 };
    t.ms += r.ms;
    if (r.outcome === "failure" && r.detail.startsWith("hang:")) t.hangs++;
    const key = r.outcome === "ok" ? `ok:${r.detail}` : r.outcome === "rejected" ? r.detail.split(",")[0]! : r.outcome;
    k.details[key] = (k.details[key] ?? 0) + 1;
    if (r.outcome === "failure" || r.outcome === "suspect") {
      const { artifact, ...rest } = r;
      summary.findings.push({ ...rest, ...(artifact ? { file: save(outDir, options.seed, r, artifact) } : {}) });
    }
    summary.slowest.push(r);
    summary.slowest.sort((a, b) => b.ms - a.ms);
    summary.slowest.length = Math.min(summary.slowest.length, 5);
    options.onResult?.(r, ++done, tasks.length);
  };
  const t0 = performance.now();
  try {
    if (options.jobs <= 0) {
      const ctx = new FuzzContext(options.seed, tmpDir);
      const saved = { ...LIMITS };
      Object.assign(LIMITS, FUZZ_LIMITS);
      try {
        for (const t of tasks) record(await ctx.run(t.kind, t.index, options.timeoutMs, outDir));
      } finally {
        Object.assign(LIMITS, saved);
      }
    } else {
      await runInWorkers(options, tasks, tmpDir, outDir, record);
    }
  } finally {
    try {
      Deno.removeSync(tmpDir, { recursive: true });
    } catch {
      // never created
    }
  }
  return {
    seed: options.seed,
    jobs: options.jobs,
    elapsedMs: performance.now() - t0,
    ...summary,
  };
}

function save(outDir: string, seed: number, r: CaseResult, artifact: Artifact): string {
  Deno.mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `${r.kind}-s${seed}-${r.index}-${r.cls}`);
  const file = `${base}.${artifact.ext}`;
  if (artifact.bytes) Deno.writeFileSync(file, artifact.bytes);
  else Deno.writeTextFileSync(file, artifact.text ?? "");
  const how = `deno run -A tools/fuzz.ts --seed ${seed} --only ${r.kind}:${r.index}`;
  Deno.writeTextFileSync(
    `${base}.txt`,
    `${r.outcome}: ${r.detail}\nclass: ${r.cls}\nseed: ${r.seed}\nms: ${r.ms.toFixed(0)}\nreproduce: ${how}\n`,
  );
  return file;
}

interface Slot {
  worker: Worker;
  ready: Promise<void>;
}

/** Runs cases in worker threads; a case that outlives the time bound or crashes its worker is a failure. */
async function runInWorkers(
  options: FuzzOptions,
  tasks: readonly { kind: FuzzKind; index: number }[],
  tmpDir: string,
  outDir: string,
  record: (r: CaseResult) => void,
): Promise<void> {
  const url = new URL("../tests/fuzz/worker.ts", import.meta.url).href;
  let main: FuzzContext | undefined;
  const lost = (t: { kind: FuzzKind; index: number }, detail: string, ms: number): CaseResult => {
    main ??= new FuzzContext(options.seed, tmpDir);
    try {
      const m = main.mutant(t.kind, t.index, outDir);
      return { ...t, cls: m.cls, seed: m.seed, outcome: "failure", detail, ms, artifact: m.artifact };
    } catch (e) {
      return { ...t, cls: "?", seed: "?", outcome: "failure", detail: `${detail}; fuzzer: ${describeError(e)}`, ms };
    }
  };
  const spawn = (): Slot => {
    const worker = new Worker(url, { type: "module" });
    const ready = new Promise<void>((ok, fail) => {
      worker.onmessage = (
        e,
      ) => (e.data?.type === "ready" ? ok() : fail(new Error(`worker: ${JSON.stringify(e.data)}`)));
      worker.onerror = (e) => {
        e.preventDefault();
        fail(new Error(`worker failed to start: ${e.message}`));
      };
    });
    worker.postMessage({ type: "init", seed: options.seed, tmpDir, outDir, limits: FUZZ_LIMITS });
    return { worker, ready };
  };
  let next = 0;
  const lane = async () => {
    let slot = spawn();
    await slot.ready;
    while (next < tasks.length) {
      const t = tasks[next++]!;
      const t0 = performance.now();
      const wait = options.timeoutMs * (t.kind === "cli" ? CLI_SPAWN_FACTOR : 1);
      const result = await new Promise<CaseResult | "lost">((done) => {
        const timer = setTimeout(() => done("lost"), wait);
        slot.worker.onmessage = (e) => {
          clearTimeout(timer);
          done(e.data as CaseResult);
        };
        slot.worker.onerror = (e) => {
          e.preventDefault();
          clearTimeout(timer);
          done(lost(t, `crash: ${e.message}`, performance.now() - t0));
        };
        slot.worker.postMessage({ type: "run", kind: t.kind, index: t.index, timeoutMs: options.timeoutMs });
      });
      if (result === "lost" || result.outcome === "failure" && result.detail.startsWith("crash:")) {
        slot.worker.terminate();
        record(
          result === "lost" ? lost(t, `hang: no result after ${wait / 1000} s`, wait) : result,
        );
        slot = spawn();
        await slot.ready;
      } else record(result);
    }
    slot.worker.terminate();
  };
  await Promise.all(Array.from({ length: Math.min(options.jobs, Math.max(1, tasks.length)) }, lane));
}

/** The run as text: counts per outcome and per mutation class, throughput, findings. */
export function formatSummary(s: FuzzSummary): string {
  const out: string[] = [];
  const pct = (n: number, d: number) => (d ? `${((100 * n) / d).toFixed(1)}%` : "-");
  const TITLES = {
    spec: "spec fuzzing (parseSpec, plus the pass pipeline for a sample)",
    weights: "weights fuzzing (parseSafetensors, read-back, bindWeights)",
    cli: "command-line fuzzing (varc main() in-process; atomic-writes in a process under ulimit -f)",
  };
  const LABELS = {
    spec: ["compiled ok", "diagnostics"],
    weights: ["parsed+bound ok", "named errors"],
    cli: ["exit 0 ok", "clean errors"],
  };
  for (const kind of ["spec", "weights", "cli"] as const) {
    const k = s[kind];
    if (k.cases === 0) continue;
    const title = TITLES[kind];
    out.push(
      `${title}: ${k.cases} cases, ${(k.ms / 1000).toFixed(1)} s in the code under test (${
        (k.ms / k.cases).toFixed(1)
      } ms/case)`,
    );
    const [okLabel, rejLabel] = LABELS[kind];
    out.push(
      `  ${okLabel}: ${k.outcomes.ok} (${pct(k.outcomes.ok, k.cases)}), ${rejLabel}: ${k.outcomes.rejected} (${
        pct(k.outcomes.rejected, k.cases)
      }), suspects: ${k.outcomes.suspect}, failures: ${k.outcomes.failure}`,
    );
    const details = Object.entries(k.details).sort((a, b) => b[1] - a[1]).filter(([d], i) =>
      i < 12 || d.startsWith("ok:")
    );
    out.push(`  top results: ${details.map(([d, n]) => `${d} ${n}`).join(", ")}`);
    out.push(
      `  ${"class".padEnd(20)} ${"cases".padStart(6)} ${"ok".padStart(6)} ${rejLabel.padStart(12)} ${
        "suspect".padStart(8)
      } ${"failure".padStart(8)} ${"hang".padStart(5)} ${"s".padStart(8)}`,
    );
    for (const [cls, o] of Object.entries(k.byClass).sort()) {
      const n = o.ok + o.rejected + o.suspect + o.failure;
      if (n === 0) continue;
      const t = k.classTime[cls] ?? { ms: 0, hangs: 0 };
      out.push(
        `  ${cls.padEnd(20)} ${String(n).padStart(6)} ${String(o.ok).padStart(6)} ${String(o.rejected).padStart(12)} ${
          String(o.suspect).padStart(8)
        } ${String(o.failure).padStart(8)} ${String(t.hangs).padStart(5)} ${(t.ms / 1000).toFixed(1).padStart(8)}`,
      );
    }
  }
  const total = s.spec.cases + s.weights.cases + s.cli.cases;
  out.push(
    `wall time ${(s.elapsedMs / 1000).toFixed(1)} s for ${total} cases (${
      (total / (s.elapsedMs / 1000)).toFixed(1)
    } cases/s, ${s.jobs > 0 ? `${s.jobs} worker${s.jobs > 1 ? "s" : ""}` : "in-process"}), seed ${s.seed}`,
  );
  if (s.slowest.length) {
    out.push(
      `slowest: ${s.slowest.map((r) => `${r.kind}:${r.index} ${r.cls} ${(r.ms / 1000).toFixed(2)} s`).join(", ")}`,
    );
  }
  const groups = new Map<string, (typeof s.findings)[number][]>();
  for (const f of s.findings) {
    const detail = f.detail.replace(/\S*\/\S*/g, "PATH").replace(/"[^"]*"/g, '"…"').replace(/\d+/g, "N");
    const key = `${f.outcome} ${f.kind}: ${detail.slice(0, 120)}`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  for (const [key, fs] of [...groups].sort((a, b) => b[1].length - a[1].length)) {
    const f = fs[0]!;
    out.push(`${fs.length} × ${key}`);
    out.push(
      `    e.g. ${f.kind}:${f.index} [${f.cls}, seed ${f.seed}] ${f.detail}${f.file ? `\n    -> ${f.file}` : ""}`,
    );
  }
  return out.join("\n");
}

/** Repository root, for callers that resolve paths. */
export { ROOT };
