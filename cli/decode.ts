/** @file `varc decode`: a token pyramid to f̂ and an image, as the official `idxBl_to_img(same_shape=True, last_one=True)`. */
import { prepareOutputFile, writeAtomic } from "./output.ts";
import { checkFiniteOutput } from "../runtime/sample.ts";
import { readTokens } from "./forward.ts";
import { writeSafetensors } from "../runtime/safetensors.ts";
import { type Command, required, specArg } from "./common.ts";
import { compileAndLoad } from "./model.ts";

export const decodeCommand: Command = {
  summary: "Decode a token pyramid into f_hat and an image",
  usage:
    `Usage: varc decode <spec.var.ts> --vae VAE.safetensors --tokens FILE.safetensors [--tokens-name idx_BL] --out OUT.safetensors

Sums every scale's Phi(bicubic(codebook[tokens])) into f_hat, runs the VQ-VAE decoder, and writes
f_hat (F32 [B, Cvae, n, n]) and img (F32 [B, 3, H, W], clamped and mapped to [0, 1]).

Options:
  --vae FILE           VQ-VAE checkpoint (safetensors, official state-dict names)
  --tokens FILE        safetensors file holding the pyramid [B, L] (I64 or I32)
  --tokens-name NAME   tensor name inside --tokens (default idx_BL)
  --out FILE           output safetensors file
  --target T           js, webgpu, or auto (default js)
  -h, --help           show this help`,
  options: {
    vae: { type: "string" },
    tokens: { type: "string" },
    "tokens-name": { type: "string" },
    out: { type: "string" },
    target: { type: "string" },
    "print-ir-after": { type: "string" },
  },
  async run(values, positionals) {
    const spec = specArg(positionals);
    const [vaePath, tokensPath, out] = ["vae", "tokens", "out"].map((f) => required(values, f));
    await prepareOutputFile(out!);
    const entries = ["tokens_to_fhat", "decode"];
    const { model, meta } = await compileAndLoad(spec, values, { vae: vaePath }, "decode", entries);
    const name = (values["tokens-name"] as string | undefined) ?? "idx_BL";
    const { data, batch } = await readTokens(tokensPath!, name, undefined, meta);
    const fhat = (await model.run("tokens_to_fhat", { idx_BL: { data, shape: [batch, meta.tokens] } })).outputs.fhat!;
    const img = (await model.run("decode", { fhat })).outputs.img!;
    checkFiniteOutput("f_hat", fhat.data, fhat.shape);
    checkFiniteOutput("img", img.data, img.shape);
    await writeAtomic(
      out!,
      writeSafetensors([
        { name: "f_hat", dtype: "F32", shape: fhat.shape, data: fhat.data as Float32Array },
        { name: "img", dtype: "F32", shape: img.shape, data: img.data as Float32Array },
      ], { producer: "varc decode", spec }),
    );
    console.log(`wrote ${out}: f_hat [${fhat.shape.join(", ")}], img [${img.shape.join(", ")}]`);
  },
};
