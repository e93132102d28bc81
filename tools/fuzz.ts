/**
 * Fuzzes the spec front end, the checkpoint reader and the command line; exits 1 on any failure.
 *
 *     deno run -A tools/fuzz.ts [--spec N] [--weights N] [--cli N] [--seed S] [--jobs J] [--timeout SECONDS]
 *                               [--out DIR] [--only spec:INDEX,weights:INDEX,cli:INDEX] [--strict] [--quiet]
 *
 * Cases are a function of (seed, fuzzer, index), so `--seed S --only spec:123` reproduces one case.
 * Failing mutants are written to `out/fuzz/` with a `.txt` beside each saying what went wrong.
 * `--strict` also fails on suspects (specs accepted with IR that later stages cannot run).
 */
import { parseArgs } from "node:util";
import { formatSummary, type FuzzKind, runFuzz } from "./fuzz_lib.ts";

const USAGE =
  "usage: deno run -A tools/fuzz.ts [--spec N] [--weights N] [--cli N] [--seed S] [--jobs J] [--timeout SECONDS] [--out DIR] [--only KIND:INDEX,…] [--strict] [--quiet]";

function count(v: string | undefined, name: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`--${name} must be a non-negative integer, got ${v}`);
  return n;
}

export async function main(args: readonly string[]): Promise<number> {
  let flags;
  try {
    flags = parseArgs({
      args: [...args],
      options: {
        spec: { type: "string" },
        weights: { type: "string" },
        cli: { type: "string" },
        seed: { type: "string" },
        jobs: { type: "string" },
        timeout: { type: "string" },
        out: { type: "string" },
        only: { type: "string" },
        strict: { type: "boolean" },
        quiet: { type: "boolean" },
        help: { type: "boolean" },
      },
    }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }
  let options;
  try {
    const only = flags.only?.split(",").map((s) => {
      const [kind, index] = s.split(":");
      if ((kind !== "spec" && kind !== "weights" && kind !== "cli") || !/^\d+$/.test(index ?? "")) {
        throw new TypeError(`--only takes spec:INDEX, weights:INDEX or cli:INDEX, got ${s}`);
      }
      return { kind: kind as FuzzKind, index: Number(index) };
    });
    options = {
      spec: count(flags.spec, "spec", 5000),
      weights: count(flags.weights, "weights", 5000),
      cli: count(flags.cli, "cli", 5000),
      seed: count(flags.seed, "seed", 1),
      jobs: count(flags.jobs, "jobs", Math.max(1, Math.min(4, navigator.hardwareConcurrency ?? 2))),
      timeoutMs: count(flags.timeout, "timeout", 10) * 1000,
      outDir: flags.out ?? "out/fuzz",
      ...(only ? { only } : {}),
    };
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const t0 = performance.now();
  let lastPrint = 0;
  const summary = await runFuzz({
    ...options,
    onResult: (r, done, total) => {
      if (r.outcome === "failure" || r.outcome === "suspect") {
        console.log(`${r.outcome} ${r.kind}:${r.index} [${r.cls}, ${r.seed}] ${r.detail}`);
      }
      const now = performance.now();
      if (!flags.quiet && (now - lastPrint > 10_000 || done === total)) {
        lastPrint = now;
        console.log(`  ${done}/${total} cases, ${((now - t0) / 1000).toFixed(0)} s`);
      }
    },
  });
  console.log(formatSummary(summary));
  const kinds = [summary.spec, summary.weights, summary.cli];
  const failures = kinds.reduce((n, k) => n + k.outcomes.failure, 0);
  const suspects = kinds.reduce((n, k) => n + k.outcomes.suspect, 0);
  return failures > 0 || (flags.strict && suspects > 0) ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
