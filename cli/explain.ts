/** @file `varc explain`: per attention node, the bound, the polynomial, the cost of both paths, the decision. */
import { compile, explainText } from "../compiler/mod.ts";
import { calibrate } from "../runtime/calibrate.ts";
import { importModel } from "../runtime/mod.ts";
import { type Command, numberFlag, specArg, UsageError } from "./common.ts";
import { LOWERING_FLAGS, LOWERING_HELP, loweringOptions, optionalCheckpoints, weightLookup } from "./lowering.ts";

export const explainCommand: Command = {
  summary: "Explain how each attention node is lowered (bound, polynomial, cost, decision)",
  usage: `Usage: varc explain <spec.var.ts> [--var VAR.safetensors] [--vae VAE.safetensors] [options]

For every attention block: the paper's quantity R and R/√ln n, the logit half-range β per head and
its source (static-exact, static-propagated, calibrated), the polynomial family, degree and rank,
the predicted output error 2ε/(1−ε)·‖V‖∞, the flops of the exact and low-rank paths, and the
decision with its reason. Without --var, bounds come from the spec alone (e.g. the τ clamp).

Options:
  --var FILE               VAR checkpoint: read τ and weights for tighter bounds
  --vae FILE               VQ-VAE checkpoint (decoder attention bounds; needed by --calibrate)
  --calibrate N            run N sample generations and use the measured norms (needs --var and --vae)
${LOWERING_HELP}
  -h, --help               show this help`,
  options: {
    var: { type: "string" },
    vae: { type: "string" },
    calibrate: { type: "string" },
    ...LOWERING_FLAGS,
  },
  async run(values, positionals) {
    const spec = specArg(positionals);
    const options = await analysisOptions(spec, values);
    const compiled = await compile(spec, options);
    console.log(explainText(compiled.module, compiled.report.attention));
  },
};

/** Lowering flags, checkpoint lookups and calibration data, as compile options. */
export async function analysisOptions(spec: string, values: Record<string, unknown>) {
  const files = await optionalCheckpoints(values);
  const options = { ...loweringOptions(values), ...(files.var || files.vae ? { weights: weightLookup(files) } : {}) };
  if (values.calibrate === undefined) return options;
  const runs = numberFlag(values, "calibrate", 0);
  if (!(Number.isInteger(runs) && runs >= 1 && runs <= 1000)) {
    throw new UsageError(`--calibrate must be an integer in [1, 1000], got ${runs}`);
  }
  if (!files.var || !files.vae) throw new UsageError("--calibrate needs --var and --vae (it runs sample generations)");
  const exact = await compile(spec, { ...options, attention: "exact" });
  const calibration = await calibrate(await importModel(exact.emitted.bundle), files, runs);
  return { ...options, calibration };
}
