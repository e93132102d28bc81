/// <reference lib="dom" />
/**
 * @file The page's JS-target generation, in a Web Worker so that the page keeps answering input: the glyph
 * models compiled for js by the esbuild plugin, bound to the checkpoint bytes the page sends, generating on
 * request. Each scale's latent f̂ and progress are posted as they arrive, then the tokens and the image.
 */
import type { CompiledModel } from "../../compiler/esbuild_plugin.ts";
import type { GenerateOptions, Generation } from "../../runtime/generate.ts";
import type { HostTensor, LoadedModel } from "../../runtime/mod.ts";
import standard from "../glyphs/standard.var.ts?target=js";
import bounded from "../glyphs/bounded.var.ts?target=js";

// The plugin replaced each spec import by its compiled module; TypeScript still sees the spec's value.
const COMPILED: Readonly<Record<string, CompiledModel>> = {
  standard: standard as unknown as CompiledModel,
  bounded: bounded as unknown as CompiledModel,
};

/** What the page asks, answered in order. */
export type WorkerRequest =
  | { type: "load"; model: string; var: Uint8Array; vae: Uint8Array }
  | { type: "generate"; model: string; options: Omit<GenerateOptions, "onScale"> };

/**
 * The worker's answers: `loaded` after a load; for a generation, `latent` and `scale` per scale, then
 * `done`; `error` (name and message) when a request fails.
 */
export type WorkerReply =
  | { type: "loaded"; ms: number }
  | { type: "latent"; k: number; fhat: HostTensor }
  | { type: "scale"; k: number; scales: number; ms: number }
  | { type: "done"; idx: Int32Array; img: HostTensor; timings: Generation["timings"] }
  | { type: "error"; name: string; message: string };

const scope = globalThis as unknown as {
  postMessage(reply: WorkerReply): void;
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
};
const post = (reply: WorkerReply) => scope.postMessage(reply);
const models = new Map<string, LoadedModel>();
let queue = Promise.resolve();

scope.onmessage = (event) => {
  queue = queue.then(() => handle(event.data)).catch((e: Error) =>
    post({ type: "error", name: e.name, message: e.message })
  );
};

async function handle(request: WorkerRequest): Promise<void> {
  const compiled = COMPILED[request.model];
  if (!compiled) throw new Error(`no model "${request.model}"`);
  if (request.type === "load") {
    const t0 = performance.now();
    models.set(request.model, await compiled.load({ var: request.var, vae: request.vae }));
    post({ type: "loaded", ms: performance.now() - t0 });
    return;
  }
  const model = models.get(request.model);
  if (!model) throw new Error(`model "${request.model}" is not loaded`);
  // Watch the f̂ entries the generation loop runs, to send each scale's latent as it arrives.
  const observed: LoadedModel = {
    ...model,
    async run(entry, inputs, options) {
      const r = await model.run(entry, inputs, options);
      if (entry.startsWith("fhat_")) {
        post({ type: "latent", k: Number(entry.slice(5)), fhat: await model.tensors.read(r.outputs.fhat!) });
      }
      return r;
    },
  };
  const g = await compiled.generate(observed, {
    ...request.options,
    onScale: (k, scales, ms) => post({ type: "scale", k, scales, ms }),
  });
  post({ type: "done", idx: g.idx, img: g.img, timings: g.timings });
}
