/**
 * @file `deno task bench:load [--quick]`: varc's checkpoint load against reading the same bytes into
 * a preallocated buffer; `bench/cpu.ts` uses it for its load check.
 *
 * The d16 spec is compiled once and random F32 tensors with its official names and shapes are
 * written to a temp dir (VAR and VQ-VAE, 1.5 GB; with `--quick`, the VQ-VAE file alone, bound for
 * `decode`), so both paths read from the page cache. Each timed operation runs in a fresh process,
 * as `varc generate` loads (so neither inherits memory the other already touched), and times only
 * itself: **read** is `Deno.statSync` size, a new `Uint8Array` of it, `Deno.open` and a loop of
 * 16 MiB `readSync` calls per file; **load** is `loadModel` from runtime/mod.ts on the compiled model. Rounds alternate
 * which goes first; medians.
 */
import { parseArgs } from "node:util";
import { compile } from "../compiler/mod.ts";
import { importModel, loadModel } from "../runtime/mod.ts";
import { randomF32 } from "../runtime/random.ts";

export interface LoadResult {
  readonly files: { name: string; bytes: number }[];
  /** The entries the model was bound for ("all entries" or a list). */
  readonly entries: string;
  /** Per round, milliseconds: the plain read and varc's load. */
  readonly readMs: number[];
  readonly loadMs: number[];
}

const SPEC = "examples/var_d16.var.ts";
const ROOT = new URL("../", import.meta.url);

/** Writes a safetensors file of F32 tensors (one random 1 MiB pattern repeated), streamed. */
function writeCheckpoint(path: string, tensors: { name: string; shape: readonly number[] }[]): number {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    const bytes = 4 * t.shape.reduce((a, d) => a * d, 1);
    header[t.name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8); // data aligned to 8 bytes
  const head = new Uint8Array(8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.length), true);
  head.set(new TextEncoder().encode(json), 8);
  const pattern = new Uint8Array(randomF32(1 << 18, 7, 0.02).buffer);
  const file = Deno.openSync(path, { write: true, create: true, truncate: true });
  try {
    const writeAll = (b: Uint8Array) => {
      for (let at = 0; at < b.length;) at += file.writeSync(b.subarray(at));
    };
    writeAll(head);
    for (let left = offset; left > 0; left -= pattern.length) {
      writeAll(pattern.subarray(0, Math.min(left, pattern.length)));
    }
  } finally {
    file.close();
  }
  return head.length + offset;
}

/** Bytes per read call of the baseline (16 MiB reads beat one whole-file read here). */
const CHUNK = 16 << 20;

/** The baseline: stat, a buffer of that size, and a loop of readSync calls into it. */
export function readPreallocated(path: string): Uint8Array {
  const size = Deno.statSync(path).size;
  const buf = new Uint8Array(size);
  const file = Deno.openSync(path);
  try {
    for (let at = 0; at < size;) {
      const n = file.readSync(buf.subarray(at, Math.min(size, at + CHUNK)));
      if (!n) throw new Error(`${path}: short read at ${at} of ${size} bytes`);
      at += n;
    }
  } finally {
    file.close();
  }
  return buf;
}

/** Runs one timed operation in a fresh process; its milliseconds. */
async function child(kind: "read" | "load", dir: string): Promise<number> {
  const args = ["run", "-A", "--no-lock", new URL(import.meta.url).pathname, "--child", kind, "--dir", dir];
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), { args, cwd: ROOT, stdin: "null" })
    .output();
  const text = new TextDecoder();
  if (!success) throw new Error(`${kind}: ${text.decode(stderr).trim().split("\n").at(-1)}`);
  return JSON.parse(text.decode(stdout).trim().split("\n").at(-1)!).ms;
}

/**
 * The measurement: `rounds` (default 5) of each, alternating which goes first. Both sides vary by seconds
 * from round to round on a shared host (one read of the 1.24 GB file took 0.9 s, another 4.6 s in the same
 * run), so a median of three was decided by one slow round.
 */
export async function benchLoad(options: { quick?: boolean; rounds?: number } = {}): Promise<LoadResult | string> {
  const quick = options.quick ?? false, rounds = options.rounds ?? 5;
  const dir = await Deno.makeTempDir({ prefix: "varc-bench-load-" });
  try {
    const compiled = await compile(SPEC, { target: "js" });
    await Deno.writeTextFile(`${dir}/model.js`, compiled.emitted.bundle);
    const module = await importModel(compiled.emitted.bundle);
    const sources = quick ? (["vae"] as const) : (["var", "vae"] as const);
    const files: LoadResult["files"] = [];
    for (const source of sources) {
      const bytes = writeCheckpoint(
        `${dir}/${source}.safetensors`,
        module.info.params.filter((p) => p.source === source),
      );
      files.push({ name: `d16 ${source}.safetensors`, bytes });
    }
    const readMs: number[] = [], loadMs: number[] = [];
    for (let r = 0; r < rounds; r++) {
      if (r % 2) loadMs.push(await child("load", dir)), readMs.push(await child("read", dir));
      else readMs.push(await child("read", dir)), loadMs.push(await child("load", dir));
    }
    return { files, entries: quick ? "entries decode" : "all entries", readMs, loadMs };
  } catch (e) {
    return `failed: ${String(e).split("\n")[0]}`;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** In a child: the checkpoint paths present in `dir`. */
function paths(dir: string): { var?: string; vae?: string } {
  const out: { var?: string; vae?: string } = {};
  for (const source of ["var", "vae"] as const) {
    const p = `${dir}/${source}.safetensors`;
    try {
      Deno.statSync(p), out[source] = p;
    } catch { /* not written */ }
  }
  return out;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { child: { type: "string" }, dir: { type: "string" }, quick: { type: "boolean" } },
  });
  if (values.child) {
    const dir = values.dir!, p = paths(dir);
    let ms: number;
    if (values.child === "read") {
      const t = performance.now();
      for (const path of Object.values(p)) readPreallocated(path);
      ms = performance.now() - t;
    } else {
      const module = await importModel(await Deno.readTextFile(`${dir}/model.js`));
      const t = performance.now();
      await loadModel(module, p, p.var ? undefined : ["decode"]);
      ms = performance.now() - t;
    }
    console.log(JSON.stringify({ ms }));
  } else {
    const r = await benchLoad({ quick: values.quick });
    if (typeof r === "string") console.log(r);
    else {
      const median = (xs: number[]) => {
        const s = [...xs].sort((a, b) => a - b), h = s.length >> 1;
        return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
      };
      console.log(r.files.map((f) => `${f.name} ${(f.bytes / 1e9).toFixed(3)} GB`).join(", "), `(${r.entries})`);
      console.log(`read ms: ${r.readMs.map((x) => x.toFixed(0)).join(", ")}`);
      console.log(`loadModel ms: ${r.loadMs.map((x) => x.toFixed(0)).join(", ")}`);
      console.log(`median loadModel / median read: ${(median(r.loadMs) / median(r.readMs)).toFixed(2)}×`);
    }
  }
}
