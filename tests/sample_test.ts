/**
 * @file `varc sample`: images independent of the batch size, shards and resume; each image equals
 * `varc generate` of its class and recorded seed; the index records checked against hashes computed
 * here; bad input in one line.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { decode } from "fast-png";
import { imageSeed } from "../runtime/sample.ts";
import { findAdapter } from "../cli/compile.ts";
import {
  CLASSES,
  files,
  GLYPHS,
  IMAGES,
  indexLines,
  noStackTrace,
  PER_CLASS,
  pngs,
  runCli,
  sampleArgs,
  SETTINGS,
  spawnCli,
} from "./_samples.ts";

const hex = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** The batch-1 run every other run is compared with, made once. */
let reference: Promise<string> | undefined;
function referenceRun(): Promise<string> {
  return reference ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "varc_sample_ref_" });
    const r = await runCli(...sampleArgs(dir, "--batch", "1"));
    assert.equal(r.code, 0, r.err);
    return dir;
  })();
}

Deno.test("varc sample: batch 1 and batch 4 write the same PNGs and records; each image is varc generate of its seed", async () => {
  const one = await referenceRun();
  const four = await Deno.makeTempDir({ prefix: "varc_sample_b4_" });
  const r = await runCli(...sampleArgs(four, "--batch", "4"));
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /shard 0\/1 \(one shard\): 10 of 10 images .* 0 complete, 10 to make; batch 4 \(--batch\)/);
  assert.match(r.err, /shard 0\/1: 10\/10 images, [0-9.]+ images\/s, done/);
  assert.match(r.out, /shard 0\/1: made 10 images in .* images\/s, batch 4\)/);

  const [a, b] = [await pngs(one), await pngs(four)];
  const labels = CLASSES.flatMap((c) => Array<number>(PER_CLASS).fill(c)); // class-major
  assert.deepEqual([...a.keys()], labels.map((c, i) => `${String(i).padStart(6, "0")}_c${c}.png`));
  for (const [name, bytes] of a) assert.deepEqual(b.get(name), bytes, `${name} differs between batch 1 and 4`);
  assert.deepEqual(await indexLines(four), await indexLines(one));

  // The records, against hashes and seeds computed here.
  const model = createHash("sha256").update(
    ["spec", "var", "vae"].map((k) => `${k} ${hex(Deno.readFileSync(GLYPHS[k as keyof typeof GLYPHS]))}\n`).join(""),
  ).digest("hex");
  const records = (await indexLines(one)).map((l) => JSON.parse(l)).sort((x, y) => x.index - y.index);
  assert.equal(records.length, IMAGES);
  for (const [i, rec] of records.entries()) {
    const file = [...a.keys()][i]!;
    assert.deepEqual(rec, {
      file,
      index: i,
      class: labels[i],
      class_name: "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[labels[i]!],
      seed: imageSeed(11, i),
      images: IMAGES,
      settings: { seed: 11, cfg: 2, top_k: 20, top_p: 0.6, target: "js", lowering: {} },
      model: `sha256:${model}`,
      width: 32,
      height: 32,
      png_sha256: hex(a.get(file)!),
    });
    const png = decode(a.get(file)!);
    assert.deepEqual([png.width, png.height, png.channels, png.depth], [32, 32, 3, 8]);
  }
  // Rows of one class differ (their seeds do): the seeds reach the sampler.
  assert.notDeepEqual(a.get("000000_c3.png"), a.get("000001_c3.png"));

  // The independent path: one image with varc generate, one generator seeded with the recorded seed.
  for (const i of [0, 7]) {
    const g = await Deno.makeTempDir({ prefix: "varc_sample_gen_" });
    const args = ["--var", GLYPHS.var, "--vae", GLYPHS.vae, "--labels", String(labels[i]), ...SETTINGS, "--out", g];
    args[args.indexOf("--seed") + 1] = String(records[i].seed);
    const r = await runCli("generate", GLYPHS.spec, ...args);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(await Deno.readFile(`${g}/image_0.png`), a.get(records[i].file), `image ${i} vs varc generate`);
    await Deno.remove(g, { recursive: true });
  }
  await Deno.remove(four, { recursive: true });
});

Deno.test("a run killed mid-way resumes to the files of an uninterrupted run, byte for byte", async () => {
  const one = await referenceRun();
  const dir = await Deno.makeTempDir({ prefix: "varc_sample_kill_" });
  const child = spawnCli(sampleArgs(dir, "--batch", "1"));
  let made = 0;
  const deadline = Date.now() + 60_000;
  while (made < 3 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
    // names only: the running process renames its temporary files meanwhile, so reading them could race
    made = 0;
    for await (const e of Deno.readDir(dir)) if (e.isFile && e.name.endsWith(".png")) made++;
  }
  child.kill("SIGKILL");
  await child.output();
  const left = (await pngs(dir)).size;
  assert.ok(left >= 3 && left < IMAGES, `killed with ${left} of ${IMAGES} images written: not mid-way`);
  // What else a crash can leave: a PNG changed after it was recorded, half an index line, a temporary file.
  const first = `${dir}/000000_c3.png`;
  await Deno.writeFile(first, (await Deno.readFile(first)).subarray(0, 40));
  await Deno.writeTextFile(`${dir}/index-0-of-1.jsonl`, '{"file":"0000', { append: true });
  await Deno.writeTextFile(`${dir}/.000009_c12.png.4242.deadbeef.tmp`, "partial");

  const r = await runCli(...sampleArgs(dir, "--batch", "3")); // another batch size: the same images
  assert.equal(r.code, 0, r.err);
  const kept = Number(/(\d+) complete, (\d+) to make \((\d+) of them partial or changed\)/.exec(r.err)?.[1]);
  assert.ok(kept >= 1 && kept < left, r.err); // the truncated PNG is not among them
  assert.match(r.out, new RegExp(`made ${IMAGES - kept} images .*; ${kept} were already complete`));
  assert.deepEqual(await pngs(dir), await pngs(one));
  assert.deepEqual(await indexLines(dir), await indexLines(one));
  assert.deepEqual(
    [...(await files(dir)).keys()].filter((n) => !n.endsWith(".png")),
    ["index-0-of-1.jsonl"],
    "no temporary file left",
  );

  const again = await runCli(...sampleArgs(dir)); // complete: nothing to make
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, /made 0 images .*; 10 were already complete/);
  // Another run's settings in the same folder: refused, naming the difference.
  const other = await runCli(...sampleArgs(dir).map((a) => a === "0.6" ? "0.7" : a));
  assert.equal(other.code, 1);
  assert.match(
    other.err,
    /^error: .* holds images of another run \(.*index-0-of-1\.jsonl:1: top_p 0\.6, this run 0\.7\)/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "varc sample on webgpu: batch 1 and batch 3 write the same PNGs",
  ignore: !(await findAdapter()),
  async fn() {
    const dirs = [];
    for (const batch of ["1", "3"]) {
      const dir = await Deno.makeTempDir({ prefix: "varc_sample_gpu_" });
      const args = sampleArgs(dir, "--batch", batch, "--target", "webgpu");
      args[args.indexOf("3,7,10-12")] = "3,7"; // four images
      const r = await runCli(...args);
      assert.equal(r.code, 0, r.err);
      dirs.push(dir);
    }
    const [a, b] = [await pngs(dirs[0]!), await pngs(dirs[1]!)];
    assert.equal(a.size, 4);
    assert.deepEqual(b, a);
    assert.match((await indexLines(dirs[0]!))[0]!, /"target":"webgpu"/);
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  },
});

Deno.test("varc sample: bad flags and label files exit 1 with one line naming the problem", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_sample_bad_" });
  await Deno.writeTextFile(`${dir}/labels.txt`, "3, 7\n12 40\n");
  const base = ["sample", GLYPHS.spec, "--var", GLYPHS.var, "--vae", GLYPHS.vae, "--out", `${dir}/o`];
  const cases: [string[], RegExp][] = [
    [["--classes", "5-3", "--per-class", "1"], /--classes: the range "5-3" runs backwards; write 3-5/],
    [["--classes", "0x3", "--per-class", "1"], /--classes: "0x3" is not a class index or a range/],
    [["--classes", "1,0-2", "--per-class", "1"], /--classes: class 1 is listed twice/],
    [["--classes", "30-36", "--per-class", "1"], /--classes: 36 is not a class index in \[0, 36\)/],
    [["--per-class", "0"], /--per-class must be a whole number in \[1, 100000000\], got "0"/],
    [["--per-class", "2.5"], /--per-class must be a whole number/],
    [["--per-class", "1", "--batch", "0"], /--batch must be a whole number in \[1, 4096\], got "0"/],
    [[], /give --per-class N \(with --classes to pick classes\) or --labels-file FILE/],
    [["--labels-file", `${dir}/labels.txt`, "--per-class", "1"], /--labels-file gives every label: drop --per-class/],
    [["--labels-file", `${dir}/labels.txt`], /labels\.txt:2: "40" is not a class index in \[0, 36\)/],
    [["--labels-file", `${dir}/none.txt`], /--labels-file .*none\.txt: no such file/],
    [["--per-class", "1", "--shard", "2/2"], /shard 2 does not exist: --shard 2\/2 gives 2 shards/],
    [["--per-class", "1", "--seed", "-3"], /--seed must be a whole number ≥ 0, got -3/],
    [["--per-class", "1", "--top-k", "600"], /--top-k must be an integer in \[0, 512\]/],
  ];
  for (const [extra, pattern] of cases) {
    const r = await runCli(...base, ...extra);
    assert.equal(r.code, 1, extra.join(" "));
    assert.match(r.err.split("\n")[0]!, pattern, extra.join(" "));
    noStackTrace(r.err);
  }
  assert.equal(await Deno.stat(`${dir}/o`).then(() => true, () => false), false, "nothing was written");
  await Deno.remove(dir, { recursive: true });
});
