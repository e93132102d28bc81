/// <reference lib="dom" />
/**
 * @file The page of `deno task serve`: the shipped glyph VARs (standard, and bounded-entry with low-rank
 * attention) compiled at bundle time by the esbuild plugin (once per target), the chosen model's
 * checkpoints fetched with a streamed progress bar, generation on WebGPU (the JS target, in a Web Worker
 * (`worker.ts`) so that the page keeps answering input, when the browser has no adapter or the device
 * fails), the latent f̂ drawn after each scale, then the decoded image, the compile report's attention rows
 * and timings.
 *
 * `?backend=js` or `?backend=webgpu` in the page URL forces a target.
 */
import type { CompiledModel } from "../../compiler/esbuild_plugin.ts";
import type { AttentionRow } from "../../compiler/report.ts";
import type { Generation } from "../../runtime/generate.ts";
import type { HostTensor, LoadedModel } from "../../runtime/mod.ts";
import type { WorkerReply, WorkerRequest } from "./worker.ts";
import standardGpu from "../glyphs/standard.var.ts?target=webgpu";
import standardJs from "../glyphs/standard.var.ts?target=js";
import boundedGpu from "../glyphs/bounded.var.ts?target=webgpu";
import boundedJs from "../glyphs/bounded.var.ts?target=js";

type Backend = "webgpu" | "js";

/** A model the page offers: its compiled module per target and its checkpoints. */
interface Offered {
  readonly title: string;
  readonly compiled: Record<Backend, CompiledModel>;
  readonly weights: { readonly var: string; readonly vae: string };
}

// The plugin replaced each spec import by its compiled module; TypeScript still sees the spec's value.
const MODELS: Readonly<Record<string, Offered>> = {
  standard: {
    title: "glyphs, standard (head dim 64, exact attention)",
    compiled: { webgpu: standardGpu as unknown as CompiledModel, js: standardJs as unknown as CompiledModel },
    weights: { var: "weights/var_standard.safetensors", vae: "weights/vae.safetensors" },
  },
  bounded: {
    title: "glyphs, bounded entries (head dim 4, τ ≤ 0.5, low-rank attention)",
    compiled: { webgpu: boundedGpu as unknown as CompiledModel, js: boundedJs as unknown as CompiledModel },
    weights: { var: "weights/var_bounded.safetensors", vae: "weights/vae.safetensors" },
  },
};
/** Errors of the device itself: generation falls back to the JS target on these. */
const DEVICE_FAILURES = new Set(["DeviceLostError", "NoAdapterError", "WgslError"]);

/** What the page exposes for scripts and tests (also mirrored in `body[data-state]`). */
export interface PageState {
  state: "loading" | "ready" | "running" | "done" | "error";
  backend?: Backend;
  device?: string;
  /** Why the page runs the JS target, when it does in auto mode. */
  fallbackReason?: string;
  error?: string;
  /** The offered model in use (a key of MODELS). */
  model?: string;
  last?: {
    settings: Settings;
    idx: number[];
    width: number;
    height: number;
    timings: Record<string, number>;
    backend: Backend;
  };
}

interface Settings {
  model: string;
  label: number;
  seed: number;
  cfg: number;
  topK: number;
  topP: number;
}

const page: PageState = { state: "loading" };
(globalThis as { varcPage?: PageState }).varcPage = page;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
type Meta = { classes: number; classNames: string; schedule: number[]; vocab: number };
const metaOf = (m: Offered) => m.compiled.js.info.meta as Meta;

function setState(state: PageState["state"]): void {
  page.state = state;
  document.body.dataset.state = state;
  const busy = state === "loading" || state === "running";
  $<HTMLButtonElement>("generate").disabled = busy;
  $<HTMLSelectElement>("model").disabled = busy;
}

function showError(message: string): void {
  page.error = message;
  const box = $<HTMLDivElement>("error");
  box.textContent = message;
  box.hidden = false;
}

function showBackend(backend: Backend, device?: string): void {
  $<HTMLParagraphElement>("backend-line").textContent = backend === "webgpu"
    ? `Target: WebGPU${device ? ` on ${device}` : ""}`
    : "Target: JS (CPU, in a Web Worker)";
}

function note(message: string): void {
  const box = $<HTMLDivElement>("backend-note");
  box.textContent = message;
  box.hidden = false;
}

/** WebGPU when the browser gives an adapter (or `?backend=` says so), else the JS target with the reason. */
async function pickBackend(): Promise<{ backend: Backend; reason?: string }> {
  const forced = new URLSearchParams(location.search).get("backend");
  if (forced === "js") return { backend: "js", reason: "?backend=js in the page URL" };
  if (forced === "webgpu") return { backend: "webgpu" };
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return { backend: "js", reason: "this browser has no navigator.gpu" };
  try {
    if (!(await gpu.requestAdapter())) return { backend: "js", reason: "navigator.gpu found no adapter" };
  } catch (e) {
    return { backend: "js", reason: `requestAdapter failed: ${(e as Error).message}` };
  }
  return { backend: "webgpu" };
}

/** Both checkpoints of `m`, fetched in parallel; one progress bar over their summed Content-Length. */
async function fetchWeights(m: Offered): Promise<{ var: Uint8Array; vae: Uint8Array; ms: number }> {
  const t0 = performance.now();
  const loaded = { var: 0, vae: 0 }, total = { var: 0, vae: 0 };
  const bar = $<HTMLProgressElement>("weights-progress"), text = $<HTMLSpanElement>("weights-text");
  const mb = (n: number) => (n / 2 ** 20).toFixed(1);
  const update = () => {
    const sum = loaded.var + loaded.vae, of = total.var + total.vae;
    bar.value = of ? sum / of : 0;
    text.textContent = `${mb(sum)} / ${of ? mb(of) : "?"} MiB`;
  };
  const get = (which: "var" | "vae") =>
    m.compiled.js.fetchBytes(m.weights[which], (n, t) => {
      loaded[which] = n, total[which] = t ?? n;
      update();
    });
  const [v, vae] = await Promise.all([get("var"), get("vae")]);
  const ms = performance.now() - t0;
  text.textContent = `${mb(v.length + vae.length)} MiB in ${(ms / 1000).toFixed(2)} s`;
  bar.value = 1;
  return { var: v, vae, ms };
}

function readSettings(): Settings {
  const num = (id: string) => Number($<HTMLInputElement>(id).value);
  return {
    model: $<HTMLSelectElement>("model").value,
    label: num("label"),
    seed: num("seed"),
    cfg: num("cfg"),
    topK: num("top-k"),
    topP: num("top-p"),
  };
}

/** A small canvas of f̂ [1, C, n, n]: channels 0–2 as RGB around mid-grey, scaled by the map's largest |value|. */
function latentCanvas(fhat: HostTensor): HTMLCanvasElement {
  const [, c, h, w] = fhat.shape as [number, number, number, number];
  const plane = h * w, channels = Math.min(3, c);
  let max = 1e-12;
  for (let i = 0; i < channels * plane; i++) max = Math.max(max, Math.abs(fhat.data[i]!));
  const rgba = new Uint8ClampedArray(plane * 4);
  for (let p = 0; p < plane; p++) {
    for (let ch = 0; ch < 3; ch++) {
      rgba[p * 4 + ch] = ch < channels ? 128 + 127 * fhat.data[ch * plane + p]! / max : 128;
    }
    rgba[p * 4 + 3] = 255;
  }
  const canvas = document.createElement("canvas");
  canvas.width = w, canvas.height = h;
  canvas.getContext("2d")!.putImageData(new ImageData(rgba, w, h), 0, 0);
  return canvas;
}

/** Lets the browser paint (WebGPU generation runs its host code on the main thread). */
function nextFrame(): Promise<void> {
  return new Promise((done) => {
    const timer = setTimeout(done, 50); // rAF does not run in hidden tabs
    requestAnimationFrame(() => setTimeout(() => (clearTimeout(timer), done()), 0));
  });
}

function renderReport(rows: readonly AttentionRow[]): void {
  const fmt = (x: number | undefined, digits = 3) =>
    x === undefined ? "" : Number.isFinite(x) ? Number(x.toPrecision(digits)).toString() : String(x);
  const tbody = $<HTMLTableElement>("report").tBodies[0]!;
  tbody.replaceChildren();
  for (const r of rows) {
    const tr = tbody.insertRow();
    const cells = [
      r.block,
      r.where,
      String(r.keys),
      fmt(r.R),
      fmt(r.RoverSqrtLogN),
      fmt(Math.max(...r.beta)),
      r.source,
      r.decision,
      r.rank === undefined ? "" : String(r.rank),
      r.predictedError === undefined ? "" : fmt(r.predictedError),
      r.reason,
    ];
    for (const text of cells) tr.insertCell().textContent = text;
    if (r.decision === "lowrank") tr.cells[7]!.className = "lowrank";
  }
}

function renderTimings(rows: [string, string][]): void {
  const tbody = $<HTMLTableElement>("timings").tBodies[0]!;
  tbody.replaceChildren();
  for (const [k, v] of rows) {
    const tr = tbody.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Shows `m`'s compile report and classes (by their characters). */
function showModel(m: Offered): void {
  const report = m.compiled.js.report, meta = metaOf(m);
  const lowrank = report.attention.filter((a) => a.decision === "lowrank").length;
  $<HTMLParagraphElement>("model-line").textContent = `${report.name} (${report.spec}): ${
    report.parameters.var.toLocaleString("en-US")
  } VAR parameters, scales ${
    meta.schedule.join(", ")
  }; ${lowrank} of ${report.attention.length} attention blocks low-rank.`;
  renderReport(report.attention);
  const select = $<HTMLSelectElement>("label"), was = select.value;
  select.replaceChildren();
  for (let c = 0; c < meta.classes; c++) {
    const name = meta.classNames ? `${meta.classNames[c]}` : `class ${c}`;
    select.add(new Option(name, String(c)));
  }
  select.value = was && Number(was) < meta.classes ? was : String(Math.min(10, meta.classes - 1));
}

async function main(): Promise<void> {
  const modelSelect = $<HTMLSelectElement>("model");
  for (const [key, m] of Object.entries(MODELS)) modelSelect.add(new Option(m.title, key));
  const picked = await pickBackend();
  let backend = picked.backend;
  showBackend(backend);
  if (picked.reason) {
    page.fallbackReason = picked.reason;
    note(`WebGPU is not used (${picked.reason}): running the JS target on the CPU.`);
  }
  // Checkpoints per offered model, fetched when first chosen; bound on WebGPU here, on the JS target in the worker.
  const fetched = new Map<string, Awaited<ReturnType<typeof fetchWeights>>>();
  const gpuModels = new Map<string, LoadedModel>();
  const inWorker = new Set<string>();
  let worker: JsWorker | undefined;
  const modelFor = async (key: string, b: Backend): Promise<LoadedModel | JsWorker> => {
    const w = fetched.get(key)!;
    if (b === "js") {
      worker ??= new JsWorker();
      if (!inWorker.has(key)) await worker.request({ type: "load", model: key, var: w.var, vae: w.vae });
      inWorker.add(key);
      return worker;
    }
    if (!gpuModels.has(key)) gpuModels.set(key, await MODELS[key]!.compiled.webgpu.load({ var: w.var, vae: w.vae }));
    return gpuModels.get(key)!;
  };
  let bindMs = 0;
  const choose = async (key: string) => {
    setState("loading");
    page.model = key;
    showModel(MODELS[key]!);
    if (!fetched.has(key)) fetched.set(key, await fetchWeights(MODELS[key]!));
    const t0 = performance.now();
    await modelFor(key, backend);
    bindMs = performance.now() - t0;
    page.backend = backend;
    setState("ready");
  };
  modelSelect.addEventListener("change", () => {
    choose(modelSelect.value).catch((e) => {
      showError(`${(e as Error).name}: ${(e as Error).message}`);
      setState("error");
    });
  });
  await choose(modelSelect.value);

  $<HTMLFormElement>("settings").addEventListener("submit", async (event) => {
    event.preventDefault();
    $<HTMLDivElement>("error").hidden = true;
    setState("running");
    const settings = readSettings();
    const offered = MODELS[settings.model]!, weights = fetched.get(settings.model)!;
    try {
      let result: Awaited<ReturnType<typeof run>>;
      try {
        result = await run(offered, await modelFor(settings.model, backend), settings);
      } catch (e) {
        if (backend !== "webgpu" || !DEVICE_FAILURES.has((e as Error).name)) throw e;
        page.fallbackReason = `${(e as Error).name}: ${(e as Error).message}`;
        note(`WebGPU failed (${page.fallbackReason}): running the JS target on the CPU.`);
        backend = page.backend = "js";
        showBackend(backend);
        result = await run(offered, await modelFor(settings.model, backend), settings);
      }
      const { g, device, perScale, totalMs } = result;
      const t = g.timings;
      page.device = device;
      showBackend(backend, device);
      page.last = {
        settings,
        idx: Array.from(g.idx),
        width: g.img.shape[3]!,
        height: g.img.shape[2]!,
        timings: { ...t, total: totalMs, fetch: weights.ms, bind: bindMs },
        backend,
      };
      const schedule = metaOf(offered).schedule;
      renderTimings([
        ["backend", backend === "webgpu" ? `WebGPU (${device})` : "JS target (CPU)"],
        ["weights download", s(weights.ms)],
        ["weights parse + bind", s(bindMs)],
        ["transformer", s(t.transformer)],
        ["sampling", s(t.sampling)],
        ["f̂ accumulation", s(t.fhat)],
        ["decode", s(t.decode)],
        ["total", s(totalMs)],
        ["per scale", perScale.map((ms, i) => `${schedule[i]}²: ${ms.toFixed(0)} ms`).join(", ")],
      ]);
      setState("done");
    } catch (e) {
      showError(`${(e as Error).name}: ${(e as Error).message}`);
      setState("error");
    }
  });
}

/** The JS target in `worker.js`: one request at a time, its replies in order. */
class JsWorker {
  readonly #worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  #pending = Promise.resolve();
  #listener: (reply: WorkerReply) => void = () => {};

  constructor() {
    this.#worker.onmessage = (e: MessageEvent<WorkerReply>) => this.#listener(e.data);
    this.#worker.onerror = (e) => this.#listener({ type: "error", name: "WorkerError", message: e.message });
  }

  /** Sends a request; `onReply` sees its progress replies; resolves with its last (`loaded` or `done`). */
  request(request: WorkerRequest, onReply: (reply: WorkerReply) => void = () => {}): Promise<WorkerReply> {
    const answer = this.#pending.then(() =>
      new Promise<WorkerReply>((resolve, reject) => {
        this.#listener = (r) => {
          if (r.type === "error") reject(Object.assign(new Error(r.message), { name: r.name }));
          else if (r.type === "loaded" || r.type === "done") resolve(r);
          else onReply(r);
        };
        this.#worker.postMessage(request);
      })
    );
    this.#pending = answer.then(() => {}, () => {});
    return answer;
  }
}

/**
 * One generation, on WebGPU here or on the JS target in the worker: progress and the latent per scale as
 * they arrive, then the image on the canvas.
 */
async function run(offered: Offered, model: LoadedModel | JsWorker, o: Settings) {
  const meta = metaOf(offered), backend: Backend = model instanceof JsWorker ? "js" : "webgpu";
  const list = $<HTMLOListElement>("scales"), bar = $<HTMLProgressElement>("scale-progress");
  const text = $<HTMLSpanElement>("scale-text");
  list.replaceChildren();
  bar.value = 0;
  const S = meta.schedule.length, perScale: number[] = [];
  text.textContent = `starting on ${backend}…`;
  await nextFrame();
  const latent = (k: number, fhat: HostTensor) => {
    const li = document.createElement("li"), pn = meta.schedule[k]!;
    li.append(latentCanvas(fhat), `${k + 1}: ${pn}×${pn}`);
    list.append(li);
  };
  const onScale = (k: number, scales: number, ms: number) => {
    perScale.push(ms);
    bar.value = (k + 1) / scales;
    text.textContent = k + 1 === scales ? "decoding…" : `scale ${k + 2}/${S}`;
  };
  const options = { labels: [o.label], cfg: o.cfg, topK: o.topK, topP: o.topP, seed: o.seed };
  const t0 = performance.now();
  let g: Pick<Generation, "idx" | "img" | "timings">;
  if (model instanceof JsWorker) {
    const done = await model.request({ type: "generate", model: o.model, options }, (r) => {
      if (r.type === "latent") latent(r.k, r.fhat);
      if (r.type === "scale") onScale(r.k, r.scales, r.ms);
    });
    g = done as Extract<WorkerReply, { type: "done" }>;
  } else {
    // Watch the f̂ entries the generation loop runs, to draw each scale's latent as it arrives.
    const observed: LoadedModel = {
      ...model,
      async run(entry, inputs, options) {
        const r = await model.run(entry, inputs, options);
        if (entry.startsWith("fhat_")) {
          // a device tensor when generation keeps values on the GPU
          latent(Number(entry.slice(5)), await model.tensors.read(r.outputs.fhat!));
          await nextFrame();
        }
        return r;
      },
    };
    g = await offered.compiled.webgpu.generate(observed, { ...options, onScale });
  }
  const totalMs = performance.now() - t0;
  const image = offered.compiled[backend].toRgba(g.img, 0);
  const canvas = $<HTMLCanvasElement>("image");
  canvas.width = image.width, canvas.height = image.height;
  canvas.getContext("2d", { willReadFrequently: true })!.putImageData(
    new ImageData(image.data, image.width, image.height),
    0,
    0,
  );
  text.textContent = `done in ${s(totalMs)}`;
  return { g, device: model instanceof JsWorker ? "" : await model.device(), perScale, totalMs };
}

main().catch((e) => {
  showError(`${(e as Error).name}: ${(e as Error).message}`);
  setState("error");
});
