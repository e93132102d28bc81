/**
 * @file `varc pack` and the streamed .npz writer: the archive's structure read back by a ZIP64 reader
 * written here (CRC by the bitwise definition), the file read by numpy (Debian's python3-numpy;
 * skipped, saying why, without it), and refusals of incomplete, mixed or changed sets.
 */
import assert from "node:assert/strict";
import { decode } from "fast-png";
import { localHeader, npyHeader, writeNpz, zipTrailer } from "../cli/npz.ts";
import { GLYPHS, indexLines, noStackTrace, pngs, runCli, SETTINGS } from "./_samples.ts";

/** CRC-32 (IEEE, reflected, polynomial 0xEDB88320) bit by bit, as the ZIP specification defines it. */
function crc32Reference(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** The one member of a ZIP64 archive, found from its end records as a reader would. */
function readZip64(z: Uint8Array) {
  const v = new DataView(z.buffer, z.byteOffset, z.byteLength);
  const u16 = (o: number) => v.getUint16(o, true), u32 = (o: number) => v.getUint32(o, true);
  const u64 = (o: number) => Number(v.getBigUint64(o, true));
  const eocd = z.length - 22;
  assert.equal(u32(eocd), 0x06054b50, "end of central directory record");
  assert.deepEqual([u16(eocd + 8), u16(eocd + 10), u16(eocd + 20)], [1, 1, 0], "one entry, no comment");
  const locator = eocd - 20;
  assert.equal(u32(locator), 0x07064b50, "ZIP64 end of central directory locator");
  const end64 = u64(locator + 8);
  assert.equal(u32(end64), 0x06064b50, "ZIP64 end of central directory record");
  assert.equal(u64(end64 + 4), 44);
  assert.deepEqual([u64(end64 + 24), u64(end64 + 32)], [1, 1]);
  const cdSize = u64(end64 + 40), cd = u64(end64 + 48);
  assert.equal(cd + cdSize, end64, "the central directory ends where the ZIP64 record starts");
  assert.equal(u32(eocd + 12), cdSize);
  assert.equal(u32(eocd + 16), cd);
  assert.equal(u32(cd), 0x02014b50, "central directory header");
  assert.equal(u16(cd + 6), 45, "version needed: 4.5 (ZIP64)");
  assert.equal(u16(cd + 10), 0, "stored");
  const crc = u32(cd + 16), nameLen = u16(cd + 28), extraLen = u16(cd + 30);
  assert.deepEqual([u32(cd + 20), u32(cd + 24)], [0xffffffff, 0xffffffff], "sizes are in the ZIP64 field");
  const name = new TextDecoder().decode(z.subarray(cd + 46, cd + 46 + nameLen));
  const x = cd + 46 + nameLen;
  assert.deepEqual([u16(x), u16(x + 2), extraLen], [0x0001, 16, 20], "ZIP64 extra: both sizes");
  const size = u64(x + 4);
  assert.equal(u64(x + 12), size, "stored: compressed size = size");
  const local = u32(cd + 42);
  assert.equal(u32(local), 0x04034b50, "local file header");
  assert.equal(u32(local + 14), crc, "local CRC patched to the central one");
  assert.equal(u16(local + 6) & 8, 0, "no data descriptor");
  const lx = local + 30 + u16(local + 26);
  assert.deepEqual([u16(lx), u64(lx + 4), u64(lx + 12)], [0x0001, size, size], "local ZIP64 sizes");
  const start = lx + u16(local + 28);
  assert.equal(start + size, cd, "the data runs up to the central directory");
  const data = z.subarray(start, start + size);
  assert.equal(crc32Reference(data), crc, "CRC-32 of the data");
  return { name, data };
}

/** An .npy's shape, dtype and data, parsed from its header dict. */
function readNpy(b: Uint8Array) {
  assert.deepEqual([...b.subarray(0, 8)], [0x93, ..."NUMPY".split("").map((c) => c.charCodeAt(0)), 1, 0]);
  const len = b[8]! | (b[9]! << 8);
  assert.equal((10 + len) % 64, 0, "header padded to 64 bytes");
  const dict = new TextDecoder().decode(b.subarray(10, 10 + len));
  assert.match(dict, /^\{'descr': '\|u1', 'fortran_order': False, 'shape': \(([0-9, ]+)\), \} *\n$/);
  const shape = /\(([0-9, ]+)\)/.exec(dict)![1]!.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  return { shape, data: b.subarray(10 + len) };
}

async function* pieces(bytes: Uint8Array, size: number) {
  for (let o = 0; o < bytes.length; o += size) yield bytes.subarray(o, o + size);
}

Deno.test("writeNpz: a ZIP64 archive with one stored .npy, sizes, offsets and CRC as a reader finds them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_npz_" });
  const shape = [3, 5, 7, 3], n = 3 * 5 * 7 * 3;
  const data = Uint8Array.from({ length: n }, (_, i) => (i * 37 + (i >> 3)) & 255);
  const size = await writeNpz(`${dir}/a.npz`, "arr_0", shape, pieces(data, 17)); // uneven pieces
  const z = await Deno.readFile(`${dir}/a.npz`);
  assert.equal(size, z.length);
  const { name, data: npy } = readZip64(z);
  assert.equal(name, "arr_0.npy");
  const parsed = readNpy(npy);
  assert.deepEqual(parsed.shape, shape);
  assert.deepEqual(parsed.data, data);
  assert.deepEqual(await writeNpz(`${dir}/b.npz`, "arr_0", shape, pieces(data, n)), size);
  assert.deepEqual(await Deno.readFile(`${dir}/b.npz`), z, "same array, same bytes (fixed time stamps)");
  // Too few or too many bytes: an error, and no file under either name.
  await assert.rejects(() => writeNpz(`${dir}/c.npz`, "arr_0", shape, pieces(data.subarray(1), 64)), /got 314 of/);
  await assert.rejects(() => writeNpz(`${dir}/c.npz`, "arr_0", [2, 2], pieces(data, 64)), /more than the 4 bytes/);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["a.npz", "b.npz"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ZIP64 fields beyond 4 GiB: 9.8 GB of 50,000 images at 256 px", () => {
  const size = npyHeader([50_000, 256, 256, 3]).length + 50_000 * 256 * 256 * 3;
  assert.ok(size > 2 ** 32);
  const local = localHeader("arr_0.npy", size), lv = new DataView(local.buffer);
  assert.equal(Number(lv.getBigUint64(30 + 9 + 4, true)), size);
  const at = local.length + size, t = zipTrailer("arr_0.npy", size, 0x12345678, at);
  const v = new DataView(t.buffer), cdSize = 46 + 9 + 20;
  assert.equal(Number(v.getBigUint64(46 + 9 + 4, true)), size, "central ZIP64 size");
  assert.equal(Number(v.getBigUint64(cdSize + 48, true)), at, "ZIP64 record: central directory offset");
  assert.equal(Number(v.getBigUint64(cdSize + 56 + 8, true)), at + cdSize, "locator: ZIP64 record offset");
  assert.equal(v.getUint32(t.length - 22 + 16, true), 0xffffffff, "classic record: offset does not fit");
  assert.equal(v.getUint32(16, true), 0x12345678);
});

/** A finished four-image glyph set, made once. */
let made: Promise<string> | undefined;
function sampleSet(): Promise<string> {
  return made ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "varc_pack_set_" });
    const r = await runCli(
      ...["sample", GLYPHS.spec, "--var", GLYPHS.var, "--vae", GLYPHS.vae, "--classes", "3,7", "--per-class", "2"],
      ...[...SETTINGS, "--shard", "0/1", "--out", dir],
    );
    assert.equal(r.code, 0, r.err);
    return dir;
  })();
}

const PYTHON = "/usr/bin/python3";
const hasNumpy = await new Deno.Command(PYTHON, { args: ["-c", "import numpy"], stderr: "null" }).output()
  .then((o) => o.success, () => false);
if (!hasNumpy) {
  console.log(`numpy check skipped: ${PYTHON} cannot import numpy (Debian: apt-get install python3-numpy)`);
}

Deno.test("varc pack: arr_0 uint8 [N, H, W, 3] in index order, the decoded PNGs' pixels", async () => {
  const dir = await sampleSet(), out = `${dir}.npz`;
  const r = await runCli("pack", dir, "--out", out);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^packed 4 images of 32×32 from .* arr_0 uint8 \[4, 32, 32, 3\]/);
  const expected = [...(await pngs(dir)).values()].map((p) => decode(p).data as Uint8Array);
  const all = new Uint8Array(expected.reduce((n, e) => n + e.length, 0));
  expected.reduce((o, e) => (all.set(e, o), o + e.length), 0);
  const { data } = readZip64(await Deno.readFile(out));
  const npy = readNpy(data);
  assert.deepEqual(npy.shape, [4, 32, 32, 3]);
  assert.deepEqual(npy.data, all);
  await Deno.remove(out);
});

Deno.test({
  name: "varc pack: numpy reads the .npz (np.load(...)['arr_0'])",
  ignore: !hasNumpy,
  async fn() {
    const dir = await sampleSet(), out = `${dir}.numpy.npz`;
    assert.equal((await runCli("pack", dir, "--out", out)).code, 0);
    const expected = [...(await pngs(dir)).values()].map((p) => decode(p).data as Uint8Array);
    const script = `import sys, hashlib, numpy as np
with np.load(sys.argv[1]) as z:
    a = z["arr_0"]
    print(list(z.keys()), a.dtype, list(a.shape), [hashlib.sha256(a[i].tobytes()).hexdigest() for i in range(len(a))])`;
    const o = await new Deno.Command(PYTHON, { args: ["-c", script, out], stdout: "piped", stderr: "piped" }).output();
    assert.ok(o.success, new TextDecoder().decode(o.stderr));
    const hex = async (b: Uint8Array) =>
      [...new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>))]
        .map((x) => x.toString(16).padStart(2, "0")).join("");
    const hashes = await Promise.all(expected.map(hex));
    assert.equal(
      new TextDecoder().decode(o.stdout).trim(),
      `['arr_0'] uint8 [4, 32, 32, 3] [${hashes.map((h) => `'${h}'`).join(", ")}]`,
    );
    await Deno.remove(out);
  },
});

Deno.test("varc pack refuses missing, mixed, changed and odd-sized sets, naming the images, and writes nothing", async () => {
  const good = await sampleSet();
  const copy = async () => {
    const dir = await Deno.makeTempDir({ prefix: "varc_pack_bad_" });
    for (const e of Deno.readDirSync(good)) await Deno.copyFile(`${good}/${e.name}`, `${dir}/${e.name}`);
    return dir;
  };
  const index = (dir: string) => `${dir}/index-0-of-1.jsonl`;
  const edit = async (dir: string, f: (records: Record<string, unknown>[]) => Record<string, unknown>[]) => {
    const records = (await indexLines(dir)).map((l) => JSON.parse(l));
    await Deno.writeTextFile(index(dir), f(records).map((r) => JSON.stringify(r) + "\n").join(""));
  };
  const small = await Deno.readFile(`${good}/000000_c3.png`); // a valid PNG, not the one recorded for image 3
  const { encode } = await import("fast-png"); // a valid PNG of another size
  const odd = encode({ width: 16, height: 16, data: new Uint8Array(16 * 16 * 3), channels: 3, depth: 8 });
  const sha = async (b: Uint8Array) =>
    [...new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>))]
      .map((x) => x.toString(16).padStart(2, "0")).join("");
  const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
    [
      "missing",
      (d) => edit(d, (rs) => rs.filter((r) => r.index !== 1 && r.index !== 3)),
      /is missing 2 of the run's 4 images: index 1, 3; rerun varc sample/,
    ],
    [
      "mixed",
      async (d) => {
        await edit(d, (rs) => rs.filter((r) => r.index !== 2));
        const other = (await indexLines(good)).map((l) => JSON.parse(l)).filter((r) => r.index === 2);
        other[0].settings.cfg = 3;
        await Deno.writeTextFile(`${d}/index-1-of-3.jsonl`, JSON.stringify(other[0]) + "\n");
      },
      /mixes two runs: .*index-0-of-1\.jsonl:1 has cfg 2, .*index-1-of-3\.jsonl:1 has cfg 3/,
    ],
    [
      "no file",
      (d) => Deno.remove(`${d}/000002_c7.png`),
      /000002_c7\.png: recorded in .*index-0-of-1\.jsonl:3 but missing/,
    ],
    [
      "changed",
      (d) => Deno.writeFile(`${d}/000003_c7.png`, small),
      /000003_c7\.png: its sha-256 is not the one recorded \(changed after it was made\)/,
    ],
    [
      "odd size",
      async (d) => {
        await Deno.writeFile(`${d}/000003_c7.png`, odd);
        const h = await sha(odd);
        await edit(d, (rs) => rs.map((r) => r.index === 3 ? { ...r, png_sha256: h } : r));
      },
      /images differ in size: .*000003_c7\.png is 16×16, .*000000_c3\.png is 32×32/,
    ],
    ["no index", (d) => Deno.remove(index(d)), /has no index-\*\.jsonl: not a folder written by varc sample/],
    [
      "bad line",
      (d) => Deno.writeTextFile(index(d), "{}\n", { append: true }),
      /index-0-of-1\.jsonl:5: not a record of varc sample \("index" is not/,
    ],
  ];
  for (const [what, breakIt, pattern] of cases) {
    const dir = await copy();
    await breakIt(dir);
    const r = await runCli("pack", dir, "--out", `${dir}/out.npz`);
    assert.equal(r.code, 1, what);
    assert.match(r.err, pattern, `${what}: ${r.err}`);
    assert.equal(r.err.split("\n").length, 1, `${what}: one line`);
    noStackTrace(r.err);
    assert.deepEqual([...Deno.readDirSync(dir)].filter((e) => e.name.includes("npz")), [], `${what}: no output left`);
    await Deno.remove(dir, { recursive: true });
  }
  const r = await runCli("pack", good, "--out", good);
  assert.match(r.err, /--out .*: is a folder, expected a file name/);
});
