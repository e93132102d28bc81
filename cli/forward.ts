/** @file `varc forward`: teacher-forced logits of a token pyramid, as the official `VAR.forward`. */
import { prepareOutputFile, writeAtomic } from "./output.ts";
import { checkFiniteOutput } from "../runtime/sample.ts";
import { readSafetensors, type TensorToWrite, writeSafetensors } from "../runtime/safetensors.ts";
import { LOWERING_FLAGS, LOWERING_HELP } from "./lowering.ts";
import { type Command, parseLabels, required, specArg, UsageError } from "./common.ts";
import { compileAndLoad } from "./model.ts";

export const forwardCommand: Command = {
  summary: "Teacher-forced logits of a token pyramid (official VAR.forward)",
  usage: `Usage: varc forward <spec.var.ts> --var VAR.safetensors --vae VAE.safetensors
                   --labels 3,7 --tokens FILE.safetensors [--tokens-name idx_BL] --out OUT.safetensors

Builds the teacher-forcing input from the token pyramid with the VQ-VAE quantizer
(official idxBl_to_var_input) and runs the transformer with the block-causal mask.
Writes logits_BLV (f32 [B, L, V]), x_BLCv_wo_first_l (f32 [B, L-1, Cvae]) and any taps.

Options:
  --var FILE               VAR checkpoint (safetensors, official state-dict names)
  --vae FILE               VQ-VAE checkpoint (codebook and Phi convs are read)
  --labels LIST            one class index per batch row, e.g. 3,7
  --tokens FILE            safetensors file holding the pyramid [B, L] (I64 or I32)
  --tokens-name NAME       tensor name inside --tokens (default idx_BL)
  --tap LABEL              also write this labelled tensor (repeatable), e.g. blocks.0.attn.q
  --out FILE               output safetensors file
  --target T               js, webgpu, or auto (WebGPU when an adapter exists; default js)
  --print-ir-after NAMES   print the IR after these passes
${LOWERING_HELP}
  -h, --help               show this help`,
  options: {
    var: { type: "string" },
    vae: { type: "string" },
    labels: { type: "string" },
    tokens: { type: "string" },
    "tokens-name": { type: "string" },
    tap: { type: "string", multiple: true },
    out: { type: "string" },
    target: { type: "string" },
    ...LOWERING_FLAGS,
    "print-ir-after": { type: "string" },
  },
  async run(values, positionals) {
    const spec = specArg(positionals);
    const [varPath, vaePath, out, labelText, tokensPath] = ["var", "vae", "out", "labels", "tokens"].map((f) =>
      required(values, f)
    );
    await prepareOutputFile(out!);
    const { model, meta } = await compileAndLoad(spec, values, { var: varPath, vae: vaePath }, "forward", [
      "forward",
    ]);
    const labels = parseLabels(labelText!, meta.classes);
    const name = (values["tokens-name"] as string | undefined) ?? "idx_BL";
    const { data } = await readTokens(tokensPath!, name, labels.length, meta);
    const result = await model.run("forward", {
      labels: { data: Int32Array.from(labels), shape: [labels.length] },
      idx_BL: { data, shape: [labels.length, meta.tokens] },
    }, { taps: (values.tap as string[] | undefined) ?? [] });
    for (const [k, t] of Object.entries(result.outputs)) checkFiniteOutput(k, t.data, t.shape);
    const tensors: TensorToWrite[] = Object.entries({ ...result.outputs, ...result.taps }).map(([name, t]) => ({
      name,
      dtype: t.data instanceof Int32Array ? "I32" : "F32",
      shape: t.shape,
      data: t.data,
    }));
    await writeAtomic(out!, writeSafetensors(tensors, { producer: "varc forward", spec }));
    console.log(`wrote ${out}: ${tensors.map((t) => `${t.name} [${t.shape.join(", ")}]`).join(", ")}`);
  },
};

/** Reads a [B, L] token pyramid (B = `batch` when given) and checks its shape and value range. */
export async function readTokens(
  path: string,
  name: string,
  batch: number | undefined,
  meta: { vocab: number; tokens: number },
): Promise<{ data: Int32Array; batch: number }> {
  const file = await readSafetensors(path);
  const entry = file.entries.get(name);
  if (!entry) {
    const names = [...file.entries.keys()].filter((n) => n.includes("idx")).slice(0, 6);
    throw new UsageError(
      `--tokens-name: ${path} has no tensor "${name}"${names.length ? ` (index tensors: ${names.join(", ")})` : ""}`,
    );
  }
  const [b, l] = entry.shape;
  if (entry.shape.length !== 2 || l !== meta.tokens || (batch !== undefined && b !== batch) || b === 0) {
    const want = `[${batch ?? "B"}, ${meta.tokens}]`;
    throw new UsageError(
      `--tokens: "${name}" has shape [${
        entry.shape.join(", ")
      }], expected ${want} (one row per image, ${meta.tokens} tokens)`,
    );
  }
  const data = file.i32(name);
  const bad = data.findIndex((v) => v < 0 || v >= meta.vocab);
  if (bad >= 0) {
    throw new UsageError(
      `--tokens: "${name}"[${Math.floor(bad / meta.tokens)}, ${bad % meta.tokens}] = ${
        data[bad]
      } is not a token in [0, ${meta.vocab})`,
    );
  }
  return { data, batch: b! };
}
