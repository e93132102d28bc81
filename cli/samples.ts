/**
 * @file A sample set on disk, written by `varc sample` and read by `varc pack`.
 *
 * A folder holds one PNG per image, named `<index>_c<class>.png` with the index zero-padded to at least
 * six digits (names sort by index), and one JSON-lines index per shard, `index-<K>-of-<N>.jsonl`: a line
 * per finished image, appended after its PNG was renamed into place. Shards never write the same file,
 * so any number of them can share a folder. A record names the run it belongs to (model hash, settings,
 * number of images); a rerun trusts a record only when its PNG still has the recorded sha-256.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { UsageError } from "./common.ts";

/** A sample folder that cannot be used as it is (another run's images, a malformed index, a missing file). */
export class SampleSetError extends Error {
  override name = "SampleSetError";
}

/** A shard that cannot be used, from `--shard`, `--shards` or the job-index variables; the message names the source. */
export class ShardError extends Error {
  override name = "ShardError";
}

/** Most images one run may have (names and indices stay short; 50,000 is the usual evaluation set). */
export const MAX_IMAGES = 100_000_000;

/** Settings that, with the model, the class and the image's seed, determine an image's pixels. */
export interface SampleSettings {
  readonly seed: number;
  readonly cfg: number;
  readonly top_k: number;
  readonly top_p: number;
  /** "js" or "webgpu": their float rounding differs, so a set is made on one. */
  readonly target: string;
  /** Lowering flags that were given (attention, eps, family, degree), by flag name. */
  readonly lowering: Readonly<Record<string, string | number>>;
}

/** One line of an index file. */
export interface ImageRecord {
  readonly file: string;
  readonly index: number;
  readonly class: number;
  /** The class's name where the model has `classNames`. */
  readonly class_name?: string;
  /** `imageSeed(settings.seed, index)`: `varc generate --labels <class> --seed <seed>` makes the same image. */
  readonly seed: number;
  /** Images in the whole run (all shards). */
  readonly images: number;
  readonly settings: SampleSettings;
  /** "sha256:<hex>" over the spec and both checkpoints (`modelHash`). */
  readonly model: string;
  readonly width: number;
  readonly height: number;
  readonly png_sha256: string;
}

/** A record with where it was read from: the index file's name and "path:line" (1-based). */
export interface Located {
  readonly record: ImageRecord;
  readonly file: string;
  readonly source: string;
}

/** The file name of image `index` of class `cls` in a run of `images` images. */
export function imageName(index: number, cls: number, images: number): string {
  const width = Math.max(6, String(Math.max(0, images - 1)).length);
  return `${String(index).padStart(width, "0")}_c${cls}.png`;
}

/** The index file of shard k of n (k zero-padded so that the files of one run sort by shard). */
export function indexName(k: number, n: number): string {
  return `index-${String(k).padStart(String(n - 1).length, "0")}-of-${n}.jsonl`;
}

const INDEX_FILE = /^index-[0-9]+-of-[0-9]+\.jsonl$/;

/** Which images a process makes: those with index % n === k. `source` says where k and n came from. */
export interface Shard {
  readonly k: number;
  readonly n: number;
  readonly source: string;
}

const DECIMAL = /^[0-9]{1,9}$/;

/**
 * The shard of this process: `--shard K/N` when given (it wins over the environment); else K from
 * `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job, with N from `--shards`) or `SLURM_ARRAY_TASK_ID`
 * (a Slurm array, with N from `--shards`, or from the array when it is 0..N−1); else the whole run, 0/1.
 * With `--shards`, a resubmitted part of an array (`--array=5,17`) still makes shards 5 and 17.
 */
export function resolveShard(
  shardFlag: string | undefined,
  shardsFlag: string | undefined,
  env: (name: string) => string | undefined,
): Shard {
  const count = (text: string, what: string) => {
    if (!DECIMAL.test(text) || Number(text) < 1) {
      throw new ShardError(`${what} must be a whole number ≥ 1, got "${text}"`);
    }
    return Number(text);
  };
  const check = (k: number, n: number, source: string): Shard => {
    if (k >= n) throw new ShardError(`shard ${k} does not exist: ${source} gives ${n} shards, numbered 0 to ${n - 1}`);
    return { k, n, source };
  };
  if (shardFlag !== undefined) {
    const m = /^([0-9]{1,9})\/([0-9]{1,9})$/.exec(shardFlag.trim());
    if (!m) throw new ShardError(`--shard must be K/N with whole numbers, 0 ≤ K < N (e.g. 0/4), got "${shardFlag}"`);
    if (shardsFlag !== undefined) throw new ShardError(`--shard ${shardFlag} already gives the count: drop --shards`);
    return check(Number(m[1]), count(m[2]!, "--shard's N"), `--shard ${shardFlag}`);
  }
  const job = env("JOB_COMPLETION_INDEX"), slurm = env("SLURM_ARRAY_TASK_ID");
  const n = shardsFlag === undefined ? undefined : count(shardsFlag, "--shards");
  if (job !== undefined && slurm !== undefined) {
    throw new ShardError(
      `both JOB_COMPLETION_INDEX (${job}) and SLURM_ARRAY_TASK_ID (${slurm}) are set: give the shard with --shard K/N`,
    );
  }
  if (job !== undefined) {
    if (!DECIMAL.test(job)) throw new ShardError(`JOB_COMPLETION_INDEX must be a whole number, got "${job}"`);
    if (n === undefined) {
      throw new ShardError(
        `JOB_COMPLETION_INDEX=${job} gives the shard but not the count: pass --shards N (the Job's completions)`,
      );
    }
    return check(Number(job), n, `JOB_COMPLETION_INDEX=${job} with --shards ${n}`);
  }
  if (slurm !== undefined) {
    const read = (name: string) => {
      const v = env(name);
      if (v === undefined) throw new ShardError(`SLURM_ARRAY_TASK_ID is set but ${name} is not: pass --shards N`);
      if (!DECIMAL.test(v)) throw new ShardError(`${name} must be a whole number, got "${v}"`);
      return Number(v);
    };
    const id = read("SLURM_ARRAY_TASK_ID");
    if (n !== undefined) return check(id, n, `SLURM_ARRAY_TASK_ID=${id} with --shards ${n}`);
    // The count from the array itself: only an array 0..N−1 numbers its tasks as shards.
    const tasks = read("SLURM_ARRAY_TASK_COUNT"), min = read("SLURM_ARRAY_TASK_MIN");
    const max = read("SLURM_ARRAY_TASK_MAX"), step = env("SLURM_ARRAY_TASK_STEP") ?? "1";
    if (min !== 0 || max !== tasks - 1 || step !== "1") {
      throw new ShardError(
        `the Slurm array runs ${min}-${max}${step === "1" ? "" : `:${step}`} (${tasks} tasks): to count shards by ` +
          `its tasks it must be 0-${tasks - 1}; otherwise pass --shards N (the array's ids are the shard numbers)`,
      );
    }
    return check(id, tasks, `SLURM_ARRAY_TASK_ID=${id} of an array of ${tasks}`);
  }
  if (n !== undefined) {
    throw new ShardError(
      "--shards needs a shard index: --shard K/N, or JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID in the environment",
    );
  }
  return { k: 0, n: 1, source: "one shard" };
}

/** `--classes 0-9,20,30-35` -> [0, …, 9, 20, 30, …, 35]: decimal classes and ranges, each listed once. */
export function parseClasses(text: string, classes: number): number[] {
  const out: number[] = [], seen = new Set<number>();
  for (const raw of text.split(",")) {
    const item = raw.trim(), m = /^([0-9]{1,9})(?:-([0-9]{1,9}))?$/.exec(item);
    if (!m) {
      throw new UsageError(`--classes: "${item}" is not a class index or a range A-B of decimal class indices`);
    }
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new UsageError(`--classes: the range "${item}" runs backwards; write ${b}-${a}`);
    if (b >= classes) {
      throw new UsageError(
        `--classes: ${b} is not a class index in [0, ${classes}) (the model has ${classes} classes)`,
      );
    }
    for (let c = a; c <= b; c++) {
      if (seen.has(c)) throw new UsageError(`--classes: class ${c} is listed twice`);
      seen.add(c), out.push(c);
    }
  }
  return out;
}

/** Labels from a file: decimal class indices separated by commas, spaces or line breaks (one image each). */
export function parseLabelsFile(text: string, file: string, classes: number): number[] {
  const out: number[] = [];
  for (const [i, line] of text.split("\n").entries()) {
    for (const item of line.split(/[\s,]+/).filter((s) => s !== "")) {
      if (!DECIMAL.test(item) || Number(item) >= classes) {
        throw new UsageError(
          `--labels-file ${file}:${i + 1}: "${item}" is not a class index in [0, ${classes}) ` +
            `(the model has ${classes} classes)`,
        );
      }
      out.push(Number(item));
    }
  }
  if (out.length === 0) throw new UsageError(`--labels-file ${file}: no class index in it`);
  return out;
}

/** Hex sha-256 of bytes. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Hex sha-256 of a file, read in 8 MiB pieces (checkpoints may be gigabytes). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buffer = new Uint8Array(8 << 20);
  for (let n; (n = await file.read(buffer)) !== null;) hash.update(buffer.subarray(0, n));
  return hash.digest("hex");
}

/**
 * The model's identity: "sha256:" + the sha-256 of the three files' sha-256 lines (spec, VAR and
 * VQ-VAE checkpoints, in that order), so a changed spec or weight gives another hash.
 */
export async function modelHash(spec: string, varPath: string, vaePath: string): Promise<string> {
  const lines = [];
  for (const [what, path] of [["spec", spec], ["var", varPath], ["vae", vaePath]]) {
    lines.push(`${what} ${await sha256File(path!)}\n`);
  }
  return `sha256:${await sha256(new TextEncoder().encode(lines.join("")))}`;
}

/** JSON with object keys sorted, so that equal settings compare equal as text. */
function canonical(v: unknown): string | undefined {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${
      Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
        .join(",")
    }}`;
  }
  return JSON.stringify(v);
}

/** The part of a record that says which run it belongs to. */
export type RunIdentity = Pick<ImageRecord, "model" | "images" | "settings">;

/** The first field in which two runs differ, with its value in each, or undefined when they are the same run. */
export function runDifference(a: RunIdentity, b: RunIdentity): [string, string, string] | undefined {
  if (a.model !== b.model) return ["model", a.model, b.model];
  if (a.images !== b.images) return ["images", String(a.images), String(b.images)];
  const sa = a.settings as unknown as Record<string, unknown>, sb = b.settings as unknown as Record<string, unknown>;
  for (const k of new Set([...Object.keys(sa), ...Object.keys(sb)])) {
    const x = canonical(sa[k]) ?? "unset", y = canonical(sb[k]) ?? "unset";
    if (x !== y) return [k, x, y];
  }
  return undefined;
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Checks the fields of a parsed index line; the message says which is wrong. */
function checkRecord(v: unknown): ImageRecord {
  const r = v as Record<string, unknown>;
  if (!r || typeof r !== "object" || Array.isArray(r)) throw new Error("not a JSON object");
  const int = (k: string, min: number) => {
    if (!Number.isSafeInteger(r[k]) || (r[k] as number) < min) throw new Error(`"${k}" is not a whole number ≥ ${min}`);
  };
  int("index", 0), int("class", 0), int("seed", 0), int("images", 1), int("width", 1), int("height", 1);
  if ((r.index as number) >= (r.images as number)) throw new Error(`"index" ${r.index} is not below "images"`);
  if (typeof r.file !== "string" || r.file !== imageName(r.index as number, r.class as number, r.images as number)) {
    throw new Error(`"file" is not ${imageName(r.index as number, r.class as number, r.images as number)}`);
  }
  if (typeof r.model !== "string" || !/^sha256:[0-9a-f]{64}$/.test(r.model)) throw new Error(`"model" is not sha256:…`);
  if (typeof r.png_sha256 !== "string" || !HEX64.test(r.png_sha256)) throw new Error(`"png_sha256" is not a sha-256`);
  const s = r.settings as Record<string, unknown> | undefined;
  if (!s || typeof s !== "object" || Array.isArray(s)) throw new Error(`"settings" is not an object`);
  for (const k of ["seed", "cfg", "top_k", "top_p"]) {
    if (typeof s[k] !== "number") throw new Error(`"settings.${k}" is not a number`);
  }
  if (typeof s.target !== "string") throw new Error(`"settings.target" is not a string`);
  if (!s.lowering || typeof s.lowering !== "object" || Array.isArray(s.lowering)) {
    throw new Error(`"settings.lowering" is not an object`);
  }
  return r as unknown as ImageRecord;
}

/** Index files larger than this are refused (a record is a few hundred bytes: 1 GiB is millions of images). */
const MAX_INDEX_BYTES = 1 << 30;

/** An index file's complete records; a last line without its line break (a killed append) is left out. */
export interface IndexFile {
  readonly name: string;
  readonly records: readonly Located[];
  /** A partial last line was found (and left out). */
  readonly partial: boolean;
}

/** Reads every `index-*.jsonl` of `dir` (none if `dir` does not exist), sorted by name. */
export async function readIndexFiles(dir: string): Promise<IndexFile[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.isFile && INDEX_FILE.test(e.name)) names.push(e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const out: IndexFile[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    if ((await Deno.stat(path)).size > MAX_INDEX_BYTES) {
      throw new SampleSetError(`${path}: larger than ${MAX_INDEX_BYTES} bytes, not an index of varc sample`);
    }
    const lines = (await Deno.readTextFile(path)).split("\n");
    const partial = lines.pop() !== ""; // the text after the last line break: "" when the file ends with one
    const records: Located[] = [];
    for (const [i, line] of lines.entries()) {
      try {
        records.push({ record: checkRecord(JSON.parse(line)), file: name, source: `${path}:${i + 1}` });
      } catch (e) {
        const why = e instanceof SyntaxError ? "not JSON" : (e as Error).message;
        throw new SampleSetError(`${path}:${i + 1}: not a record of varc sample (${why})`);
      }
    }
    out.push({ name, records, partial });
  }
  return out;
}

/** Width and height from a PNG's signature and IHDR chunk, with bit depth and colour type. */
export function pngHeader(bytes: Uint8Array): { width: number; height: number; depth: number; colour: number } {
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 29 || signature.some((b, i) => bytes[i] !== b)) throw new Error("not a PNG file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (String.fromCharCode(...bytes.subarray(12, 16)) !== "IHDR") throw new Error("no IHDR chunk first");
  return { width: view.getUint32(16), height: view.getUint32(20), depth: bytes[24]!, colour: bytes[25]! };
}
