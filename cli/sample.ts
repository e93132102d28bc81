/**
 * @file `varc sample`: a data set of generated images (e.g. 50 per class for FID), made in batches,
 * split into shards that share one folder, and resumable: one PNG per image and a JSON-lines index
 * per shard (layout in `samples.ts`).
 */
import { join } from "node:path";
import { readRegularFileSync } from "../compiler/dsl/mod.ts";
import {
  availableBytes,
  checkGenerateOptions,
  checkGenerationMemory,
  generate,
  GENERATE_ENTRIES,
  generationBytes,
} from "../runtime/generate.ts";
import { loadModel } from "../runtime/mod.ts";
import { toPng } from "../runtime/png.ts";
import { imageSeed } from "../runtime/sample.ts";
import { type Command, numberFlag, required, specArg, UsageError } from "./common.ts";
import { LOWERING_FLAGS, LOWERING_HELP, loweringOptions } from "./lowering.ts";
import { compileModel } from "./model.ts";
import { OutputError, prepareOutputDir, writeAtomic } from "./output.ts";
import {
  imageName,
  type ImageRecord,
  indexName,
  type Located,
  MAX_IMAGES,
  modelHash,
  parseClasses,
  parseLabelsFile,
  readIndexFiles,
  resolveShard,
  runDifference,
  type RunIdentity,
  SampleSetError,
  type SampleSettings,
  sha256,
  type Shard,
} from "./samples.ts";

/**
 * Largest batch the memory plan picks by itself: the peak memory grows with B while throughput does not
 * grow much beyond a few images (`deno task bench:generate --throughput`); `--batch` overrides it.
 */
export const BATCH_CAP = 8;

/** Largest `--batch`. */
const MAX_BATCH = 4096;

/** Labels files larger than this are refused (eight bytes a label is over eight million images). */
const MAX_LABELS_FILE_BYTES = 64 << 20;

export const sampleCommand: Command = {
  summary: "Generate a data set: many images in batches, sharded across machines, resumable",
  usage: `Usage: varc sample <spec.var.ts> --var VAR.safetensors --vae VAE.safetensors --out DIR
                  (--per-class N [--classes 0-9,20] | --labels-file FILE)
                  [--seed 0] [--cfg 1.5] [--top-k 900] [--top-p 0.96] [--batch B] [--shard K/N | --shards N]

Makes many images for evaluation sets (FID/IS: 50 per class) or data sets, where "varc generate" makes
one batch and keeps its tensors for inspection. Image i gets class labels[i] (--per-class N: N images of
each class in --classes order, classes 0 to C−1 by default) and the seed imageSeed(--seed, i), so it is
the same whatever the batch size, the shard or the order it is made in; "varc generate --labels <class>
--seed <seed>" makes it alone.

Writes DIR/<index>_c<class>.png (the index zero-padded, so names sort by index) and one index per shard,
DIR/index-<K>-of-<N>.jsonl, a JSON line per image: file, index, class, seed, images, settings, model
(sha-256 over the spec and both checkpoints), width, height and png_sha256. Every file is written under a
temporary name and renamed when complete. Rerun the same command to resume: images whose record exists
and whose PNG has the recorded sha-256 are kept, the others are made again.

Shards: this process makes the images with index % N = K. K and N come from --shard K/N; otherwise K from
JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID (Slurm array) and N from --shards
(for an array 0..N−1, Slurm's task count may give N). Shards may share DIR. "varc pack DIR" packs the
finished set into an .npz.

Options:
  --var FILE               VAR checkpoint (safetensors, official state-dict names)
  --vae FILE               VQ-VAE checkpoint
  --out DIR                output folder (created if missing)
  --per-class N            images per class
  --classes LIST           classes and ranges, e.g. 0-9,20,30-35 (default: every class of the model)
  --labels-file FILE       one class index per image instead (separated by commas, spaces or lines)
  --seed N                 run seed; image i samples from imageSeed(N, i) (default 0)
  --cfg X                  guidance scale ≥ 0 (default 1.5)
  --top-k K                keep the K largest logits, 0 = all (default 900, at most the vocabulary)
  --top-p P                nucleus mass in [0, 1], 0 = off (default 0.96)
  --batch B                images per forward (default: the memory plan's, at most ${BATCH_CAP})
  --shard K/N              make the images with index % N = K (0 ≤ K < N)
  --shards N               the number of shards when K comes from the environment
  --target T               js, webgpu, or auto (default js); a set is made on one target
${LOWERING_HELP}
  -h, --help               show this help`,
  options: {
    var: { type: "string" },
    vae: { type: "string" },
    out: { type: "string" },
    "per-class": { type: "string" },
    classes: { type: "string" },
    "labels-file": { type: "string" },
    seed: { type: "string" },
    cfg: { type: "string" },
    "top-k": { type: "string" },
    "top-p": { type: "string" },
    batch: { type: "string" },
    shard: { type: "string" },
    shards: { type: "string" },
    target: { type: "string" },
    ...LOWERING_FLAGS,
  },
  async run(values, positionals) {
    const spec = specArg(positionals);
    const [varPath, vaePath, out] = ["var", "vae", "out"].map((f) => required(values, f)) as [string, string, string];
    const shard = resolveShard(text(values.shard), text(values.shards), (name) => Deno.env.get(name));
    const wanted = labelRequest(values);
    const batchFlag = values.batch === undefined ? undefined : wholeFlag(values, "batch", 1, MAX_BATCH);
    const lowering = loweringOptions(values);
    await prepareOutputDir(out); // before any work: a bad --out fails in milliseconds
    const flags = {
      cfg: numberFlag(values, "cfg", 1.5),
      topK: numberFlag(values, "top-k", -1), // -1: the official 900, or the whole vocabulary if smaller
      topP: numberFlag(values, "top-p", 0.96),
      seed: numberFlag(values, "seed", 0),
    };
    if (!(Number.isSafeInteger(flags.seed) && flags.seed >= 0)) {
      throw new UsageError(`--seed must be a whole number ≥ 0, got ${flags.seed}`);
    }
    const t0 = performance.now();
    const { module, meta } = await compileModel(spec, values, "sample", GENERATE_ENTRIES);
    if (flags.topK === -1 && values["top-k"] === undefined) flags.topK = Math.min(900, meta.vocab);
    const labels = wanted(meta.classes);
    if (labels.length > MAX_IMAGES) {
      throw new UsageError(`a run has at most ${MAX_IMAGES} images, these flags ask for ${labels.length}`);
    }
    checkGenerateOptions({ ...flags, labels }, meta); // before reading checkpoints, which may be gigabytes
    const mine = Array.from(
      { length: Math.ceil(Math.max(0, labels.length - shard.k) / shard.n) },
      (_, j) => shard.k + j * shard.n,
    );
    const plan = batchFlag === undefined ? planBatch(module.info.meta, mine.length) : undefined;
    if (batchFlag !== undefined) checkGenerationMemory(module.info.meta, batchFlag, availableBytes(), "--batch");
    const B = batchFlag ?? plan!.batch;
    // Before reading checkpoints: a folder where an image or the index goes would fail only when written.
    const finals = [...mine.map((i) => imageName(i, labels[i]!, labels.length)), indexName(shard.k, shard.n)];
    await prepareOutputDir(out, "--out", finals);
    const model = await loadModel(module, { var: varPath, vae: vaePath });
    const settings: SampleSettings = {
      seed: flags.seed,
      cfg: flags.cfg,
      top_k: flags.topK,
      top_p: flags.topP,
      target: module.info.target,
      lowering: Object.fromEntries(
        (["attention", "eps", "family", "degree"] as const).filter((k) => lowering[k] !== undefined)
          .map((k) => [k, lowering[k] as string | number]),
      ),
    };
    const run: RunIdentity = { model: await modelHash(spec, varPath, vaePath), images: labels.length, settings };
    const label = `shard ${shard.k}/${shard.n}`;
    const state = await resume(out, shard, run, labels, mine);
    const pending = mine.filter((i) => !state.complete.has(i));
    const setupMs = performance.now() - t0;
    console.error(
      `${label} (${shard.source}): ${mine.length} of ${labels.length} images (index % ${shard.n} = ${shard.k}); ` +
        `${state.complete.size} complete, ${pending.length} to make${
          state.redo ? ` (${state.redo} of them partial or changed)` : ""
        }; batch ${B} (${plan ? plan.why : "--batch"})`,
    );
    const names = (meta as unknown as { classNames?: string }).classNames;
    const progress = new Progress(label, mine.length, state.complete.size);
    const indexPath = join(out, indexName(shard.k, shard.n));
    for (let s = 0; s < pending.length; s += B) {
      const batch = pending.slice(s, s + B);
      const g = await generate(model, {
        ...flags,
        labels: batch.map((i) => labels[i]!),
        seeds: batch.map((i) => imageSeed(flags.seed, i)),
      });
      const [, , height, width] = g.img.shape as [number, number, number, number];
      let lines = "";
      for (const [b, index] of batch.entries()) {
        const cls = labels[index]!, png = toPng(g.img.data as Float32Array, g.img.shape, b);
        const file = imageName(index, cls, labels.length);
        await writeAtomic(join(out, file), png);
        const record: ImageRecord = {
          file,
          index,
          class: cls,
          ...(names ? { class_name: names[cls] } : {}),
          seed: imageSeed(flags.seed, index),
          images: run.images,
          settings,
          model: run.model,
          width,
          height,
          png_sha256: await sha256(png),
        };
        lines += JSON.stringify(record) + "\n";
      }
      await append(indexPath, lines); // after the PNGs are in place: a record always names a complete file
      progress.add(batch.length);
    }
    const ms = progress.elapsedMs();
    console.log(
      `${label}: made ${pending.length} image${pending.length === 1 ? "" : "s"} in ${seconds(ms)}` +
        `${pending.length ? ` (${rate(pending.length, ms)} images/s, batch ${B})` : ""}; ` +
        `${state.complete.size} were already complete; setup ${seconds(setupMs)} (compile, load, hash, verify); ` +
        `index ${mine.length ? indexPath : "none (no images in this shard)"}`,
    );
    if (shard.n > 1) console.log(`when every shard is done: varc pack ${out} --out samples.npz`);
    else console.log(`pack it for FID tools: varc pack ${out} --out samples.npz`);
  },
};

/** The label source the flags ask for, as a function of the model's class count (checked before any work). */
function labelRequest(values: Record<string, unknown>): (classes: number) => number[] {
  const file = text(values["labels-file"]);
  if (file !== undefined) {
    for (const f of ["per-class", "classes"]) {
      if (values[f] !== undefined) throw new UsageError(`--labels-file gives every label: drop --${f}`);
    }
    const source = readLabelsFile(file);
    return (classes) => parseLabelsFile(source, file, classes);
  }
  if (values["per-class"] === undefined) {
    throw new UsageError("give --per-class N (with --classes to pick classes) or --labels-file FILE");
  }
  const per = wholeFlag(values, "per-class", 1, MAX_IMAGES);
  const list = text(values.classes);
  return (classes) => {
    const picked = list === undefined ? Array.from({ length: classes }, (_, c) => c) : parseClasses(list, classes);
    if (picked.length * per > MAX_IMAGES) {
      throw new UsageError(`a run has at most ${MAX_IMAGES} images, these flags ask for ${picked.length * per}`);
    }
    return picked.flatMap((c) => Array<number>(per).fill(c)); // class-major: image i is of picked[⌊i / per⌋]
  };
}

function readLabelsFile(file: string): string {
  let read: string | number;
  try {
    read = readRegularFileSync(file, MAX_LABELS_FILE_BYTES);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new UsageError(`--labels-file ${file}: ${why}`);
  }
  if (typeof read === "number") {
    throw new UsageError(`--labels-file ${file}: ${read} bytes, more than the limit of ${MAX_LABELS_FILE_BYTES}`);
  }
  return read;
}

/** A decimal whole-number flag in [min, max]. */
function wholeFlag(values: Record<string, unknown>, flag: string, min: number, max: number): number {
  const v = String(values[flag]).trim();
  if (!/^[0-9]{1,10}$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new UsageError(`--${flag} must be a whole number in [${min}, ${max}], got "${values[flag]}"`);
  }
  return Number(v);
}

function text(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/**
 * The batch the memory plan allows: the most images, up to BATCH_CAP and the shard's count, whose
 * planned peak fits in the memory available now (one image that does not fit is an error).
 */
export function planBatch(
  meta: Readonly<Record<string, unknown>>,
  images: number,
  available = availableBytes(),
): { batch: number; why: string } {
  checkGenerationMemory(meta, 1, available, "--batch");
  let B = Math.max(1, Math.min(BATCH_CAP, images));
  while (B > 1 && generationBytes(meta, B).bytes > available) B--;
  const gib = (x: number) => `${(x / 2 ** 30).toFixed(2)} GiB`;
  const limit = B === images && B < BATCH_CAP ? `the shard's ${images} images` : `at most ${BATCH_CAP}`;
  return {
    batch: B,
    why: `memory plan: ${gib(generationBytes(meta, B).bytes)} at the peak, ${
      Number.isFinite(available) ? gib(available) : "unknown"
    } available; ${B < Math.min(BATCH_CAP, images) ? "more do not fit" : limit}`,
  };
}

/** What a rerun finds in the folder for this shard's images. */
interface ResumeState {
  /** Indices whose record exists and whose PNG has the recorded sha-256. */
  readonly complete: ReadonlySet<number>;
  /** Images with a PNG or a record that did not verify (made again). */
  readonly redo: number;
}

/**
 * Reads every shard's index in `dir`, refuses records of another run, verifies this shard's images
 * (record + PNG sha-256), rewrites this shard's index with only its verified records (dropping a
 * partial last line) and removes temporary files a killed run left for this shard's files.
 */
async function resume(
  dir: string,
  shard: Shard,
  run: RunIdentity,
  labels: readonly number[],
  mine: readonly number[],
): Promise<ResumeState> {
  const own = indexName(shard.k, shard.n);
  const records = new Map<number, Located[]>();
  for (const file of await readIndexFiles(dir)) {
    for (const l of file.records) {
      const diff = runDifference(run, l.record);
      if (diff) {
        throw new SampleSetError(
          `${dir} holds images of another run (${l.source}: ${diff[0]} ${diff[2]}, this run ${diff[1]}): ` +
            `give another --out, or the flags and files of that run to resume it`,
        );
      }
      if (l.record.class !== labels[l.record.index]) {
        throw new SampleSetError(
          `${dir} holds images of another run (${l.source}: image ${l.record.index} is of class ${l.record.class}, ` +
            `in this run of class ${labels[l.record.index]}): give another --out, or that run's labels`,
        );
      }
      const list = records.get(l.record.index) ?? [];
      list.push(l), records.set(l.record.index, list);
    }
  }
  const complete = new Set<number>(), keep: ImageRecord[] = [];
  let redo = 0;
  for (const i of mine) {
    const found = records.get(i) ?? [];
    const bytes = await readIfFile(join(dir, imageName(i, labels[i]!, labels.length)));
    const hash = bytes && await sha256(bytes);
    const good = found.find((l) => l.record.png_sha256 === hash);
    if (good) {
      complete.add(i);
      if (good.file === own) keep.push(good.record);
    } else if (bytes || found.length) redo++;
  }
  const ownPath = join(dir, own);
  if (keep.length || await readIfFile(ownPath)) {
    await writeAtomic(ownPath, keep.map((r) => JSON.stringify(r) + "\n").join(""));
  }
  const leftovers = new Set([
    own,
    ...mine.filter((i) => !complete.has(i)).map((i) => imageName(i, labels[i]!, labels.length)),
  ]);
  try {
    for await (const e of Deno.readDir(dir)) {
      const m = /^\.(.+)\.[0-9]+\.[0-9a-f]{8}\.tmp$/.exec(e.name); // writeAtomic's temporary names
      if (e.isFile && m && leftovers.has(m[1]!)) await Deno.remove(join(dir, e.name));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return { complete, redo };
}

/** The bytes of a regular file, or undefined when there is none. */
async function readIfFile(path: string): Promise<Uint8Array | undefined> {
  try {
    if (!(await Deno.stat(path)).isFile) return undefined;
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Appends whole lines to an index file in one write. */
async function append(path: string, lines: string): Promise<void> {
  try {
    await Deno.writeTextFile(path, lines, { append: true });
  } catch (e) {
    throw new OutputError(`appending to ${path} failed: ${(e as Error).message.replace(/:? *[a-z]+ '[^']*'$/, "")}`);
  }
}

/**
 * One progress line per shard on stderr: images done of the shard's total, images per second over
 * this process's run, and the time left at that rate. Rewritten in place on a terminal; otherwise a
 * line after the first batch, then at most one every 10 s, and after the last.
 */
class Progress {
  readonly #start = performance.now();
  readonly #tty = Deno.stderr.isTerminal();
  #made = 0;
  #done: number;
  #last = -Infinity;
  constructor(readonly label: string, readonly total: number, done: number) {
    this.#done = done;
  }

  add(n: number): void {
    this.#made += n, this.#done += n;
    const ms = this.elapsedMs(), now = performance.now();
    const finished = this.#done === this.total;
    const perSecond = this.#made / (ms / 1000);
    const eta = finished ? "done" : `ETA ${duration((this.total - this.#done) / perSecond)}`;
    const line = `${this.label}: ${this.#done}/${this.total} images, ${rate(this.#made, ms)} images/s, ${eta}`;
    if (this.#tty) {
      Deno.stderr.writeSync(new TextEncoder().encode(`\r${line}\u001b[K${finished ? "\n" : ""}`));
    } else if (finished || now - this.#last >= 10_000 || this.#made === n) {
      console.error(line);
      this.#last = now;
    }
  }

  elapsedMs(): number {
    return performance.now() - this.#start;
  }
}

function rate(images: number, ms: number): string {
  const r = images / (ms / 1000);
  return r >= 10 ? r.toFixed(1) : r.toFixed(2);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** 3725 -> "1h02m", 125 -> "2m05s", 9.4 -> "10s". */
export function duration(s: number): string {
  if (!Number.isFinite(s)) return "unknown";
  const t = Math.ceil(s), h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, "0")}s`;
  return `${sec}s`;
}
