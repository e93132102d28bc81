/// <reference lib="dom" />
/**
 * @file The page of `deno task serve` in headless Chromium (Debian's `/usr/bin/chromium`, driven over the
 * DevTools protocol by `_chromium.ts`): it loads the bundled glyph models and their checkpoints over HTTP, generates, and the
 * canvas pixels read back must equal the Deno run's image (`generate` on the js target with the same
 * settings, mapped to 8 bits as `toPng` does) within one 8-bit level per channel, with identical tokens.
 * Two runs: the page's own choice (WebGPU when Chromium gives an adapter, SwiftShader here; else its JS
 * fallback, and the test prints which), then a page without `navigator.gpu`, which must fall back to the
 * JS target and say so, on the bounded model (low-rank attention) chosen in the page's model picker, whose
 * class picker names the characters. The page must answer mouse input within MAX_INPUT_MS while a generation of
 * its JS target is in flight, which runs in a Web Worker. Then a `varc bundle` module is imported by the page and
 * generates what Deno does.
 * A screenshot goes to
 * `out/test-artifacts/browser.png`. Skipped, saying why, when `/usr/bin/chromium` is missing.
 */
import assert from "node:assert/strict";
import { bundleSpec } from "../compiler/esbuild_plugin.ts";
import { compile } from "../compiler/mod.ts";
import { servePage } from "../examples/web/serve.ts";
import type { PageState } from "../examples/web/main.ts";
import { generate } from "../runtime/generate.ts";
import { bindModel, importModel, type LoadedModel, loadModel } from "../runtime/mod.ts";
import { randomCheckpoint } from "../runtime/random.ts";
import { Chromium, type Page } from "./_chromium.ts";
import { assertClose } from "./_helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--enable-unsafe-webgpu",
  "--enable-unsafe-swiftshader",
  "--headless",
  "--no-sandbox",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
/** Largest allowed difference per 8-bit channel between the canvas and the Deno image. */
const TOLERANCE = 1;
const ARTIFACTS = "out/test-artifacts";

const hasChromium = await Deno.stat(CHROMIUM).then((s) => s.isFile, () => false);
if (!hasChromium) {
  console.log(
    `browser test skipped: ${CHROMIUM} is missing (Debian: apt-get install chromium; .ci/run does so as root)`,
  );
}

interface Settings {
  model: string;
  label: number;
  seed: number;
  cfg: number;
  topK: number;
  topP: number;
}

/** Longest wait for the page to answer an input event while a generation is in flight. */
const MAX_INPUT_MS = 250;

/**
 * Sets the form, clicks Generate, waits; returns the page state and the canvas as RGBA bytes. `whileRunning`
 * runs once the page has started generating (before: `beforeClick`).
 */
async function generateOnPage(
  page: Page,
  s: Settings,
  hooks: { beforeClick?(): Promise<void>; whileRunning?(): Promise<void> } = {},
): Promise<{ state: PageState; rgba: Uint8Array; ms: number }> {
  await page.waitForSelector("body[data-state=ready], body[data-state=error]", 120_000);
  if (await page.inputValue("#model") !== s.model) {
    await page.fill("#model", s.model);
    await page.waitForSelector("body[data-state=ready], body[data-state=error]", 120_000);
  }
  await page.fill("#label", String(s.label));
  for (const [id, v] of [["seed", s.seed], ["cfg", s.cfg], ["top-k", s.topK], ["top-p", s.topP]] as const) {
    await page.fill(`#${id}`, String(v));
  }
  await hooks.beforeClick?.();
  const t0 = performance.now();
  await page.click("#generate");
  await hooks.whileRunning?.();
  await page.waitForSelector("body[data-state=done], body[data-state=error]", 480_000);
  const ms = performance.now() - t0;
  const state = await page.evaluate(() => (globalThis as unknown as { varcPage: PageState }).varcPage);
  assert.equal(state.state, "done", `the page failed: ${state.error}`);
  const base64 = await page.evaluate(() => {
    const canvas = document.getElementById("image") as HTMLCanvasElement;
    const data = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height).data;
    let text = "";
    for (let i = 0; i < data.length; i += 0x8000) text += String.fromCharCode(...data.subarray(i, i + 0x8000));
    return btoa(text);
  });
  return { state, rgba: Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)), ms };
}

/** The Deno run: the js target on the same checkpoints and settings, as 8-bit RGBA. */
async function denoImage(model: LoadedModel, s: Settings): Promise<{ idx: number[]; rgba: Uint8Array }> {
  const g = await generate(model, { labels: [s.label], cfg: s.cfg, topK: s.topK, topP: s.topP, seed: s.seed });
  const [, , h, w] = g.img.shape as number[];
  const plane = h! * w!, rgba = new Uint8Array(plane * 4);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      rgba[p * 4 + c] = Math.round(Math.min(1, Math.max(0, g.img.data[c * plane + p]!)) * 255);
    }
    rgba[p * 4 + 3] = 255;
  }
  return { idx: Array.from(g.idx), rgba };
}

function compare(what: string, got: { state: PageState; rgba: Uint8Array }, want: { idx: number[]; rgba: Uint8Array }) {
  assert.deepEqual(got.state.last!.idx, want.idx, `${what}: tokens differ from the Deno run`);
  assert.equal(got.rgba.length, want.rgba.length, `${what}: canvas size`);
  let max = 0, differing = 0;
  for (let i = 0; i < want.rgba.length; i++) {
    const d = Math.abs(got.rgba[i]! - want.rgba[i]!);
    if (d > 0) differing++;
    max = Math.max(max, d);
  }
  console.log(
    `${what}: ${differing} of ${want.rgba.length} channel values differ, max ${max} (tolerance ${TOLERANCE})`,
  );
  assert.ok(max <= TOLERANCE, `${what}: canvas differs from the Deno image by up to ${max} levels`);
}

Deno.test({
  name: "browser: the served page generates the Deno run's image (WebGPU when available, and the JS fallback)",
  ignore: !hasChromium,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "varc_web_" });
    const profile = await Deno.makeTempDir({ prefix: "varc_chromium_" });
    const server = await servePage({ port: 0, dir });
    const browser = await Chromium.launch(CHROMIUM, ARGS, profile);
    const logs: string[] = [];
    try {
      const page = await browser.newPage();
      page.on("console", (text) => logs.push(text));
      page.on("pageerror", (text) => logs.push(`page error: ${text}`));
      const glyphs = async (which: string) =>
        await loadModel(
          await importModel((await compile(`examples/glyphs/${which}.var.ts`, { target: "js" })).emitted.bundle),
          { var: `examples/glyphs/var_${which}.safetensors`, vae: "examples/glyphs/vae.safetensors" },
        );
      const models: Record<string, LoadedModel> = {
        standard: await glyphs("standard"),
        bounded: await glyphs("bounded"),
      };

      await t.step("the page's source map names no absolute build paths", async () => {
        const map = JSON.parse(await Deno.readTextFile(`${dir}/main.js.map`)) as { sources: string[] };
        const absolute = map.sources.filter((s) => s.includes(Deno.cwd()) || /^(\w+:)?\//.test(s));
        assert.deepEqual(absolute, [], "sources with absolute paths");
        assert.ok(map.sources.some((s) => s.includes("examples/glyphs/standard.var.ts")), map.sources.join(", "));
      });

      await t.step("the page's own backend choice, greedy", async () => {
        const s = { model: "standard", label: 10, seed: 0, cfg: 1.5, topK: 1, topP: 0 };
        await page.goto(server.url);
        const got = await generateOnPage(page, s);
        const { backend, device, fallbackReason } = got.state;
        console.log(
          `chromium ran the ${backend} target${device ? ` on ${device}` : ""}${
            fallbackReason ? ` (JS fallback: ${fallbackReason})` : ""
          } in ${(got.ms / 1000).toFixed(1)} s; timings ${JSON.stringify(got.state.last!.timings)}`,
        );
        await Deno.mkdir(ARTIFACTS, { recursive: true });
        await page.screenshot(`${ARTIFACTS}/browser.png`);
        compare(`canvas (${backend})`, got, await denoImage(models.standard!, s));
      });

      await t.step("a browser without navigator.gpu: the JS fallback, sampled", async () => {
        const s = { model: "bounded", label: 17, seed: 5, cfg: 2, topK: 20, topP: 0.9 };
        const bare = await browser.newPage(() => delete (Navigator.prototype as { gpu?: unknown }).gpu);
        bare.on("pageerror", (text) => logs.push(`page error: ${text}`));
        await bare.goto(server.url);
        const got = await generateOnPage(bare, s);
        assert.equal(got.state.backend, "js");
        assert.match(await bare.textContent("#backend-note"), /no navigator\.gpu.*JS target/);
        console.log(`chromium ran the js fallback in ${(got.ms / 1000).toFixed(1)} s`);
        const option = await bare.evaluate(() =>
          (document.getElementById("label") as HTMLSelectElement).selectedOptions[0]!.textContent
        );
        assert.equal(option, "H", "the class picker names the characters");
        assert.match(await bare.textContent("#model-line"), /glyphs_bounded.*4 of 7 attention blocks low-rank/);
        compare("canvas (js fallback, bounded model)", got, await denoImage(models.bounded!, s));
      });

      await t.step("the page answers input while its JS target generates in a Web Worker", async () => {
        // The worker is held (paused in DevTools) as its generation starts, so that the input is measured while
        // a generation is in flight however fast this machine is; on the main thread it would get no answer.
        const s = { model: "standard", label: 12, seed: 3, cfg: 2, topK: 20, topP: 0.6 };
        const busy = await browser.newPage(() => delete (Navigator.prototype as { gpu?: unknown }).gpu);
        busy.on("pageerror", (text) => logs.push(`page error: ${text}`));
        await busy.goto(server.url);
        let hold: Awaited<ReturnType<Page["hold"]>> | undefined;
        const latencies: number[] = [];
        const got = await generateOnPage(busy, s, {
          async beforeClick() {
            const worker = busy.workers.find((w) => w.url.endsWith("/worker.js"));
            assert.ok(worker, `the JS target runs in no worker.js (workers: ${JSON.stringify(busy.workers)})`);
            hold = await busy.hold(worker.sessionId);
          },
          async whileRunning() {
            await hold!.paused; // the worker has the generate request
            for (let i = 0; i < 8; i++) latencies.push(await busy.inputLatency(5 + i, 5));
            const text = await busy.evaluate(() => [
              document.body.dataset.state,
              document.getElementById("scale-text")!.textContent,
            ]);
            assert.deepEqual(text, ["running", "starting on js…"]);
            await hold!.resume();
          },
        });
        assert.equal(got.state.backend, "js");
        assert.match(await busy.textContent("#backend-line"), /JS \(CPU, in a Web Worker\)/);
        const ms = latencies.map((x) => x.toFixed(0)).join(", ");
        console.log(`input answered in ${ms} ms while a generation was in flight`);
        assert.ok(Math.max(...latencies) < MAX_INPUT_MS, `input waited up to ${ms} ms (limit ${MAX_INPUT_MS})`);
        assert.equal(
          await busy.evaluate(() => document.querySelectorAll("#scales li").length),
          6,
          "a latent per scale",
        );
        compare("canvas (js in a worker, standard model)", got, await denoImage(models.standard!, s));
      });

      await t.step("a `varc bundle` module imports and generates in the page", async () => {
        const bundle = await bundleSpec("tests/specs/markov.var.ts", { target: "js" });
        const module = await importModel(bundle.code);
        const files = { var: randomCheckpoint(module, "var", 4), vae: randomCheckpoint(module, "vae", 5) };
        await Deno.mkdir(`${dir}/bundle`);
        await Deno.writeTextFile(`${dir}/bundle/model.js`, bundle.code);
        for (const f of ["var", "vae"] as const) await Deno.writeFile(`${dir}/bundle/${f}.safetensors`, files[f].bytes);
        const s = { labels: [1, 2], cfg: 1.5, topK: 4, topP: 0.9, seed: 9 };
        const want = await generate(bindModel(module, files), s);
        const got = await page.evaluate(async (s) => {
          const url = "/bundle/model.js"; // a variable keeps TypeScript from resolving the import
          const m = await import(url);
          const loaded = await m.load({ var: "/bundle/var.safetensors", vae: "/bundle/vae.safetensors" });
          const g = await m.generate(loaded, s);
          return { idx: Array.from(g.idx as Int32Array), img: Array.from(g.img.data as Float32Array) };
        }, s);
        assert.deepEqual(got.idx, Array.from(want.idx));
        assertClose("bundle image in chromium", got.img, want.img.data, 1e-5);
      });
    } catch (e) {
      console.log(logs.join("\n"));
      throw e;
    } finally {
      await browser.close();
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(profile, { recursive: true });
    }
  },
});
