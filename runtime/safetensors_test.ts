/** Tests for the safetensors reader/writer, including one per malformed-file case. */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  parseSafetensors,
  readSafetensors,
  SafetensorsError,
  type TensorToWrite,
  writeSafetensors,
} from "./safetensors.ts";

const FILE = "mem/test.safetensors";

/** A file from a raw header text and `dataSize` data bytes; `headerLen` overrides the length field. */
function build(header: string, dataSize = 0, headerLen?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + dataSize);
  new DataView(out.buffer).setBigUint64(
    0,
    headerLen ?? BigInt(json.length),
    true,
  );
  out.set(json, 8);
  return out;
}

/** Asserts that `fn` throws a SafetensorsError whose message starts with FILE and contains every part. */
function assertStError(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(
      err instanceof SafetensorsError,
      `not a SafetensorsError: ${err}`,
    );
    assert.equal(err.name, "SafetensorsError");
    assert.ok(err.message.startsWith(FILE + ": "), err.message);
    for (const p of parts) {
      assert.ok(err.message.includes(p), `"${p}" missing in: ${err.message}`);
    }
    return true;
  });
}

const parse = (bytes: Uint8Array) => () => parseSafetensors(bytes, FILE);

Deno.test("round trip: F32, I64, I32, metadata and alignment", () => {
  const a = new Float32Array([1.5, -2, 3.25, Number.NaN, Infinity, 0]);
  const b = new BigInt64Array([0n, -1n, 2n ** 40n]);
  const c = new Int32Array([7, -8, 2147483647]);
  const d = new Float32Array([42]);
  const bytes = writeSafetensors(
    [
      { name: "a", dtype: "F32", shape: [2, 3], data: a },
      { name: "c", dtype: "I32", shape: [3], data: c },
      { name: "b", dtype: "I64", shape: [3, 1], data: b },
      { name: "d", dtype: "F32", shape: [], data: d },
    ],
    { format: "pt", note: "x" },
  );
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(headerLen % 8, 0);
  const st = parseSafetensors(bytes, FILE);
  assert.equal(st.file, FILE);
  assert.deepEqual(st.metadata, { format: "pt", note: "x" });
  // Largest element size first; same-size tensors keep their given order.
  assert.deepEqual([...st.entries.keys()], ["b", "a", "c", "d"]);
  for (const e of st.entries.values()) {
    assert.equal(e.offset % (e.dtype === "I64" ? 8 : 4), 0, e.name);
  }
  assert.deepEqual(st.entries.get("a"), {
    name: "a",
    dtype: "F32",
    shape: [2, 3],
    offset: 8 + headerLen + 24,
    byteLength: 24,
  });
  const fa = st.f32("a");
  assert.equal(fa.buffer, st.bytes.buffer);
  assert.deepEqual([...fa], [...a]);
  assert.deepEqual([...st.f32("d")], [42]);
  assert.deepEqual(st.entries.get("d")!.shape, []);
  const ci = st.i32("c");
  assert.equal(ci.buffer, st.bytes.buffer);
  assert.deepEqual([...ci], [...c]);
  // I64 data round-trips bit-exactly.
  const eb = st.entries.get("b")!;
  const view = new DataView(st.bytes.buffer, eb.offset, eb.byteLength);
  assert.deepEqual([0, 1, 2].map((k) => view.getBigInt64(8 * k, true)), [
    ...b,
  ]);
  // A writer with no metadata writes no __metadata__ entry.
  const plainBytes = writeSafetensors([
    { name: "a", dtype: "F32", shape: [6], data: a },
  ]);
  assert.ok(!new TextDecoder().decode(plainBytes).includes("__metadata__"));
  const plain = parseSafetensors(plainBytes, FILE);
  assert.deepEqual(plain.metadata, {});
  assert.equal(plain.entries.size, 1);
});

Deno.test("i32 converts I64 and rejects values outside int32", () => {
  const ok = new BigInt64Array([0n, 5n, -3n, 2147483647n, -2147483648n]);
  const bad = new BigInt64Array([1n, 2n, 2147483648n]);
  const st = parseSafetensors(
    writeSafetensors([
      { name: "ok", dtype: "I64", shape: [5], data: ok },
      { name: "big", dtype: "I64", shape: [3], data: bad },
      { name: "f", dtype: "F32", shape: [1], data: new Float32Array(1) },
    ]),
    FILE,
  );
  const out = st.i32("ok");
  assert.ok(out instanceof Int32Array);
  assert.deepEqual([...out], [0, 5, -3, 2147483647, -2147483648]);
  assertStError(() => st.i32("big"), '"big"', "index 2", "2147483648");
  assertStError(() => st.i32("f"), '"f"', "I64 or I32", "F32");
  assertStError(() => st.f32("ok"), '"ok"', "F32", "I64");
  assertStError(() => st.f32("nope"), '"nope"');
  assertStError(() => st.i32("nope"), '"nope"');
});

Deno.test("f32 copies an unaligned tensor", () => {
  const bytes = writeSafetensors([
    { name: "x", dtype: "F32", shape: [3], data: new Float32Array([1, 2, 3]) },
  ]);
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  const st = parseSafetensors(shifted.subarray(1), FILE);
  const x = st.f32("x");
  assert.notEqual(x.buffer, shifted.buffer);
  assert.deepEqual([...x], [1, 2, 3]);
});

Deno.test("writer rejects inconsistent tensors", () => {
  assert.throws(
    () =>
      writeSafetensors([
        { name: "x", dtype: "F32", shape: [2, 2], data: new Float32Array(3) },
      ]),
    /"x".*4 elements.*found 3/,
  );
  assert.throws(
    () =>
      writeSafetensors([
        { name: "x", dtype: "I64", shape: [1], data: new Int32Array(1) },
      ]),
    /"x".*BigInt64Array/,
  );
  const one: TensorToWrite = {
    name: "x",
    dtype: "I32",
    shape: [1],
    data: new Int32Array(1),
  };
  assert.throws(
    () => writeSafetensors([one, one]),
    /"x".*unique/,
  );
});

Deno.test("malformed: file shorter than 8 bytes", () => {
  assertStError(parse(new Uint8Array(5)), "8 bytes", "found 5");
});

Deno.test("malformed: header length beyond the file", () => {
  assertStError(parse(build("{}", 0, 100n)), "100", "exceeds the 2 bytes");
});

Deno.test("malformed: header length over 100 MiB", () => {
  assertStError(
    parse(build("{}", 0, 2n ** 64n - 1n)),
    "18446744073709551615",
    "104857600",
  );
});

Deno.test("malformed: header not UTF-8", () => {
  const bytes = build("{}");
  bytes[8] = 0xff;
  assertStError(parse(bytes), "UTF-8");
});

Deno.test("malformed: header not JSON", () => {
  assertStError(parse(build('{"a":')), "invalid JSON");
});

Deno.test("malformed: header not a JSON object", () => {
  assertStError(parse(build("[1,2]")), "JSON object", "[1,2]");
  assertStError(parse(build("null")), "JSON object", "null");
});

Deno.test("malformed: __metadata__ not an object of strings", () => {
  assertStError(parse(build('{"__metadata__":"x"}')), "__metadata__", '"x"');
  assertStError(
    parse(build('{"__metadata__":{"a":"ok","n":3}}')),
    "__metadata__",
    '"n"',
    "found 3",
  );
});

Deno.test("malformed: entry not an object", () => {
  assertStError(parse(build('{"w":[1]}')), 'tensor "w"', "[1]");
});

Deno.test("malformed: unknown dtype", () => {
  assertStError(
    parse(build('{"w":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}', 1)),
    'tensor "w"',
    "dtype",
    '"F8"',
  );
});

Deno.test("malformed: bad shape", () => {
  for (const shape of ["[-1]", "[1.5]", '"2"', "[9007199254740992]"]) {
    assertStError(
      parse(build(
        `{"w":{"dtype":"U8","shape":${shape},"data_offsets":[0,0]}}`,
      )),
      'tensor "w"',
      "shape",
      shape,
    );
  }
});

Deno.test("malformed: bad data_offsets", () => {
  for (const offs of ["[4,0]", "[0]", "[-4,0]", "[0,1.5]", "null"]) {
    assertStError(
      parse(build(
        `{"w":{"dtype":"U8","shape":[0],"data_offsets":${offs}}}`,
        8,
      )),
      'tensor "w"',
      "data_offsets",
      offs,
    );
  }
});

Deno.test("malformed: data_offsets end beyond the data section", () => {
  assertStError(
    parse(build('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 12)),
    'tensor "w"',
    "12",
    "found 16",
  );
});

Deno.test("malformed: byte length does not match shape and dtype", () => {
  assertStError(
    parse(
      build('{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}', 24),
    ),
    'tensor "w"',
    "expected 24 bytes",
    "found 20 bytes",
  );
  // Huge shapes are compared exactly, without overflow.
  assertStError(
    parse(build(
      '{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}',
      8,
    )),
    'tensor "w"',
    "147573952589676412928",
    "found 8 bytes",
  );
});

Deno.test("malformed: overlapping tensors", () => {
  assertStError(
    parse(build(
      '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},' +
        '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}',
      16,
    )),
    '"a"',
    '"b"',
    "overlaps",
  );
});

Deno.test("malformed: duplicate tensor names", () => {
  const t = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}';
  assertStError(
    parse(build(`{"x":${t}, "w" : ${t} ,"w":${t}}`, 1)),
    'tensor "w"',
    "more than once",
  );
  // Keys are compared after unescaping; nested keys do not count.
  assertStError(
    parse(
      build(
        `{"\\u0077":{"shape":[1],"dtype":"U8","data_offsets":[0,1]},"w":${t}}`,
        1,
      ),
    ),
    'tensor "w"',
  );
  assertStError(
    parse(build('{"__metadata__":{},"__metadata__":{}}')),
    "__metadata__",
    "more than once",
  );
  const st = parseSafetensors(
    build(
      '{"__metadata__":{"a":"{\\"w\\":1}","b":"}"},' +
        '"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"w":[{"w":0}]}}',
      1,
    ),
    FILE,
  );
  assert.deepEqual([...st.entries.keys()], ["w"]);
});

Deno.test("readSafetensors: missing file", async () => {
  const path = "/nonexistent/dir/none.safetensors";
  await assert.rejects(readSafetensors(path), (err: unknown) => {
    assert.ok(err instanceof SafetensorsError);
    assert.ok(err.message.startsWith(`${path}: cannot read file: `));
    return true;
  });
});

Deno.test("fixture: var_tiny_a reference.safetensors", async () => {
  const path = fileURLToPath(
    new URL(
      "../tests/fixtures/var_tiny_a/reference.safetensors",
      import.meta.url,
    ),
  );
  const st = await readSafetensors(path);
  assert.equal(st.metadata.fixture, "var_tiny_a");
  const logits = st.entries.get("tf.logits_BLV");
  assert.ok(logits);
  assert.equal(logits.dtype, "F32");
  assert.deepEqual(logits.shape, [2, 680, 256]);
  const f = st.f32("tf.logits_BLV");
  assert.equal(f.length, 2 * 680 * 256);
  assert.equal(f.buffer, st.bytes.buffer);
  assert.ok(f.every(Number.isFinite));
  assert.equal(st.entries.get("tf.idx_BL")!.dtype, "I64");
  const idx = st.i32("tf.idx_BL");
  assert.equal(idx.length, 2 * 680);
  assert.ok(idx.every((v) => v >= 0 && v < 256));
});

Deno.test("header text quoted in errors has its control characters escaped (DEL, C1, ANSI escapes)", () => {
  for (const bad of ['{"a":{"dtype":"F\u007f32","shape":[1],"data_offsets":[0,4]}}', '{"\\u001b[2J":1}']) {
    try {
      parseSafetensors(build(bad, 4), FILE);
      assert.fail("parsed");
    } catch (e) {
      // deno-lint-ignore no-control-regex -- matching control characters is the point
      assert.doesNotMatch((e as Error).message, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
      assert.match((e as Error).message, /\\u007f|\\u001b/);
    }
  }
});
