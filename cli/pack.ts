/**
 * @file `varc pack DIR --out samples.npz`: a finished `varc sample` folder as the .npz the FID/IS
 * evaluation suites read: `arr_0`, uint8 [N, H, W, 3], images sorted by index, streamed one image at a
 * time (a 9.8 GB set never has to fit in memory).
 */
import { decode } from "fast-png";
import { join } from "node:path";
import { type Command, UsageError } from "./common.ts";
import { writeNpz } from "./npz.ts";
import { OutputError, prepareOutputFile } from "./output.ts";
import {
  type ImageRecord,
  type Located,
  pngHeader,
  readIndexFiles,
  runDifference,
  SampleSetError,
  sha256,
} from "./samples.ts";

/** Missing images named in the error before "and N more". */
const LIST_MISSING = 10;

export const packCommand: Command = {
  summary: "Pack a finished sample folder into an .npz (arr_0, uint8 [N, H, W, 3]) for FID/IS tools",
  usage: `Usage: varc pack <DIR> --out samples.npz

Reads every index-*.jsonl of DIR (written by "varc sample", one per shard), checks that they belong to
one run, that every image of the run is there (it names the missing ones) and that all have the same
size, then writes OUT: a ZIP64 archive with one stored arr_0.npy, uint8 [N, H, W, 3] in index order, the
layout of the common FID/IS evaluation suites (np.load(OUT)["arr_0"]). Images are read one at a time and
each PNG must still have the sha-256 its record gives. OUT is written under a temporary name and
renamed when complete.

Options:
  --out FILE         the .npz to write
  -h, --help         show this help`,
  options: { out: { type: "string" } },
  async run(values, positionals) {
    if (positionals.length !== 1) {
      throw new UsageError(
        positionals.length === 0
          ? "missing <DIR>"
          : `expected one folder, got ${positionals.length}: ${positionals.join(" ")}`,
      );
    }
    const dir = positionals[0]!;
    const out = typeof values.out === "string" && values.out !== "" ? values.out : undefined;
    if (!out) throw new UsageError("missing --out");
    const info = await Deno.stat(dir).catch(() => undefined);
    if (!info?.isDirectory) throw new SampleSetError(`${dir}: not a folder`);
    await prepareOutputFile(out);
    const t0 = performance.now();
    const set = await checkSet(dir);
    const { records, width, height } = set;
    const N = records.length;
    const bytes = await writeNpz(out, "arr_0", [N, height, width, 3], pixels(dir, records, width, height));
    const ms = performance.now() - t0;
    console.log(
      `packed ${N} images of ${width}×${height} from ${dir} into ${out}: arr_0 uint8 [${N}, ${height}, ${width}, 3], ` +
        `${(bytes / 1e6).toFixed(1)} MB in ${(ms / 1000).toFixed(1)} s`,
    );
  },
};

/**
 * The run's records sorted by index, after checking that every index file belongs to one run, that
 * no image is recorded twice differently, that every image 0…N−1 is recorded, and that every PNG
 * exists and is 8-bit RGB of one size (its header only: the pixels are read while packing).
 */
export async function checkSet(dir: string): Promise<{ records: ImageRecord[]; width: number; height: number }> {
  const files = await readIndexFiles(dir);
  if (files.length === 0) {
    throw new SampleSetError(`${dir} has no index-*.jsonl: not a folder written by varc sample (or not started)`);
  }
  let first: Located | undefined;
  const byIndex = new Map<number, Located>();
  for (const l of files.flatMap((f) => f.records)) {
    first ??= l;
    const diff = runDifference(first.record, l.record);
    if (diff) {
      throw new SampleSetError(
        `${dir} mixes two runs: ${first.source} has ${diff[0]} ${diff[1]}, ${l.source} has ${diff[0]} ${diff[2]}`,
      );
    }
    const seen = byIndex.get(l.record.index);
    if (seen && (seen.record.png_sha256 !== l.record.png_sha256 || seen.record.class !== l.record.class)) {
      throw new SampleSetError(
        `image ${l.record.index} is recorded twice, differently: ${seen.source} and ${l.source}`,
      );
    }
    byIndex.set(l.record.index, l);
  }
  if (!first) throw new SampleSetError(`${dir}: its index files hold no finished image yet`);
  const total = first.record.images;
  const missing = [];
  for (let i = 0; i < total; i++) if (!byIndex.has(i)) missing.push(i);
  if (missing.length) {
    const shown = missing.slice(0, LIST_MISSING).join(", ");
    const more = missing.length > LIST_MISSING ? ` and ${missing.length - LIST_MISSING} more` : "";
    throw new SampleSetError(
      `${dir} is missing ${missing.length} of the run's ${total} images: index ${shown}${more}; ` +
        `rerun varc sample with the same flags (and shards) to make them`,
    );
  }
  const records = Array.from({ length: total }, (_, i) => byIndex.get(i)!.record);
  let size: { width: number; height: number; file: string } | undefined;
  for (const r of records) {
    const path = join(dir, r.file);
    const head = await readHead(path, 33);
    if (!head) throw new SampleSetError(`${path}: recorded in ${byIndex.get(r.index)!.source} but missing`);
    let h;
    try {
      h = pngHeader(head);
    } catch (e) {
      throw new SampleSetError(`${path}: ${(e as Error).message}; rerun varc sample to make it again`);
    }
    if (h.depth !== 8 || h.colour !== 2) {
      throw new SampleSetError(`${path}: ${h.depth}-bit PNG of colour type ${h.colour}, expected 8-bit RGB (type 2)`);
    }
    size ??= { width: h.width, height: h.height, file: path };
    if (h.width !== size.width || h.height !== size.height) {
      throw new SampleSetError(
        `images differ in size: ${path} is ${h.width}×${h.height}, ${size.file} is ${size.width}×${size.height}`,
      );
    }
  }
  return { records, width: size!.width, height: size!.height };
}

/** The first `n` bytes of a regular file (fewer if it is shorter), or undefined when there is none. */
async function readHead(path: string, n: number): Promise<Uint8Array | undefined> {
  let f;
  try {
    if (!(await Deno.stat(path)).isFile) return undefined;
    f = await Deno.open(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new OutputError(`${path}: ${(e as Error).message}`);
  }
  try {
    const buf = new Uint8Array(n);
    let got = 0;
    for (let r; got < n && (r = await f.read(buf.subarray(got))) !== null;) got += r;
    return buf.subarray(0, got);
  } finally {
    f.close();
  }
}

/** Each image's RGB bytes [H, W, 3] in index order, after checking its sha-256 against its record. */
async function* pixels(
  dir: string,
  records: readonly ImageRecord[],
  width: number,
  height: number,
): AsyncGenerator<Uint8Array> {
  for (const r of records) {
    const path = join(dir, r.file);
    const bytes = await Deno.readFile(path).catch((e) => {
      throw new SampleSetError(`${path}: ${e instanceof Deno.errors.NotFound ? "removed while packing" : e.message}`);
    });
    if ((await sha256(bytes)) !== r.png_sha256) {
      throw new SampleSetError(
        `${path}: its sha-256 is not the one recorded (changed after it was made); rerun varc sample to make it again`,
      );
    }
    const png = decode(bytes);
    if (png.width !== width || png.height !== height || png.channels !== 3 || png.depth !== 8) {
      throw new SampleSetError(
        `${path}: decodes to ${png.width}×${png.height}×${png.channels}, expected ${width}×${height}×3`,
      );
    }
    yield png.data as Uint8Array;
  }
}
