/**
 * @file `deno task serve [--port 8000] [--hostname 127.0.0.1]`: builds the page (`main.ts`, and the Web
 * Worker of its JS target `worker.ts`, with the varc esbuild plugin, which compiles the shipped glyph specs
 * `examples/glyphs/*.var.ts` for webgpu and js), writes it with their checkpoints (`examples/glyphs/*.safetensors`) to `out/web/`, and serves it.
 */
import * as esbuild from "esbuild";
import { parseArgs } from "node:util";
import { dirname, extname, join, normalize, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { withEsbuild } from "../../compiler/backends/bundle.ts";
import { type CompileEvent, varcPlugin } from "../../compiler/esbuild_plugin.ts";

const HERE = fileURLToPath(new URL("./", import.meta.url));
const ROOT = resolve(HERE, "../..");
const GLYPHS = join(ROOT, "examples/glyphs");

/** The built page. */
export interface BuiltPage {
  readonly dir: string;
  readonly ms: number;
  readonly compiles: readonly CompileEvent[];
}

/** Bundles `main.ts` and `worker.ts` (the specs compiled by the plugin) and writes the static site into `dir`. */
export async function buildPage(dir = join(ROOT, "out/web")): Promise<BuiltPage> {
  const t0 = performance.now();
  const compiles: CompileEvent[] = [];
  await Deno.mkdir(join(dir, "weights"), { recursive: true });
  await withEsbuild(() =>
    esbuild.build({
      entryPoints: { main: join(HERE, "main.ts"), worker: join(HERE, "worker.ts") },
      outdir: dir,
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      minify: true,
      sourcemap: true,
      legalComments: "none",
      logLevel: "silent",
      plugins: [varcPlugin({ onCompile: (e) => compiles.push(e) })],
    })
  );
  for (const f of ["main.js.map", "worker.js.map"]) await projectRelativeSources(join(dir, f));
  for (const f of ["index.html", "style.css"]) await Deno.copyFile(join(HERE, f), join(dir, f));
  for (const f of ["var_standard.safetensors", "var_bounded.safetensors", "vae.safetensors"]) {
    await Deno.copyFile(join(GLYPHS, f), join(dir, "weights", f));
  }
  return { dir, ms: performance.now() - t0, compiles };
}

/**
 * esbuild writes source paths relative to the output folder, which names the build machine's folders
 * when that is elsewhere (`../../home/me/varc/runtime/…`): rewrite them relative to the project root.
 * The map embeds the sources' text, so nothing needs to resolve them.
 */
async function projectRelativeSources(mapFile: string): Promise<void> {
  const map = JSON.parse(await Deno.readTextFile(mapFile)) as { sources: string[] };
  const dir = dirname(mapFile);
  map.sources = map.sources.map((s) => /^[\w-]+:/.test(s) ? s : relative(ROOT, resolve(dir, s)).replaceAll("\\", "/"));
  await Deno.writeTextFile(mapFile, JSON.stringify(map));
}

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
  ".safetensors": "application/octet-stream",
};

/** A static file server over `dir` (GET/HEAD only, nothing outside `dir`); files stream with their length. */
export function staticHandler(dir: string): (request: Request) => Promise<Response> {
  const root = resolve(dir);
  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") return new Response(null, { status: 405 });
    let path: string;
    try {
      path = decodeURIComponent(new URL(request.url).pathname);
    } catch {
      return new Response("bad path", { status: 400 });
    }
    if (path.endsWith("/")) path += "index.html";
    const file = normalize(join(root, path));
    if (!file.startsWith(root + "/")) return new Response("not found", { status: 404 });
    try {
      // Symlinks may not lead out of the root: compare the resolved paths.
      const [real, realRoot] = await Promise.all([Deno.realPath(file), Deno.realPath(root)]);
      if (!real.startsWith(realRoot + "/")) return new Response("not found", { status: 404 });
      const info = await Deno.stat(real);
      if (!info.isFile) return new Response("not found", { status: 404 });
      const headers = {
        "content-type": TYPES[extname(file)] ?? "application/octet-stream",
        "content-length": String(info.size),
        "cache-control": "no-store",
      };
      if (request.method === "HEAD") return new Response(null, { headers });
      return new Response((await Deno.open(real)).readable, { headers });
    } catch {
      return new Response("not found", { status: 404 });
    }
  };
}

/** A running page server. */
export interface PageServer {
  readonly url: string;
  readonly page: BuiltPage;
  shutdown(): Promise<void>;
}

/** Builds the page, then serves it (port 0: any free port). */
export async function servePage(
  options: { port?: number; hostname?: string; dir?: string } = {},
): Promise<PageServer> {
  const page = await buildPage(options.dir);
  const hostname = options.hostname ?? "127.0.0.1";
  const server = Deno.serve({ port: options.port ?? 8000, hostname, onListen() {} }, staticHandler(page.dir));
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return { url: `http://${host}:${server.addr.port}/`, page, shutdown: () => server.shutdown() };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string", default: "8000" }, hostname: { type: "string", default: "127.0.0.1" } },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`error: --port must be an integer in [0, 65535], got "${values.port}"`);
    Deno.exit(1);
  }
  let server: PageServer;
  try {
    server = await servePage({ port, hostname: values.hostname });
  } catch (e) {
    console.error(`error: ${(e as Error).message}`); // a spec problem prints its file:line:col here
    Deno.exit(1);
  }
  for (const c of server.page.compiles) {
    if (!c.cached) console.log(`compiled ${c.spec} for ${c.target} in ${c.ms.toFixed(0)} ms`);
  }
  console.log(`built ${server.page.dir} in ${(server.page.ms / 1000).toFixed(2)} s`);
  console.log(`serving ${server.url} (Ctrl-C to stop)`);
}
