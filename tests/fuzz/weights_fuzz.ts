/**
 * @file The checkpoint fuzzer: seeded mutants of safetensors files and the oracle they are judged by.
 *
 * Seeds are the tiny VAR/VQ-VAE fixture checkpoints (bound against the params of
 * `examples/var_tiny_a.var.ts`) and small files made here. A mutant is parsed with
 * `parseSafetensors`; every tensor of a parsed file is read back, and the file is bound with
 * `bindWeights`. Each case must end in success or in a SafetensorsError/WeightsError naming the
 * file; views must stay inside the given bytes, and no allocation may exceed the file's size.
 */
import { join } from "node:path";
import { Op, type OpParams } from "../../compiler/ir/ops.ts";
import { parseSpec } from "../../compiler/dsl/mod.ts";
import {
  parseSafetensors,
  SafetensorsError,
  type SafetensorsFile,
  writeSafetensors,
} from "../../runtime/safetensors.ts";
import { bindWeights, type ParamSpec, WeightsError } from "../../runtime/weights.ts";
import { type Artifact, describeError, type Outcome, type Rng, ROOT } from "./common.ts";

/** A checkpoint to mutate and the params it is bound against. */
export interface WeightsSeed {
  readonly name: string;
  readonly bytes: Uint8Array;
  /** Which checkpoint of the model the file stands for. */
  readonly source: "var" | "vae";
  readonly params: readonly ParamSpec[];
  readonly optional: readonly string[];
  readonly weight: number;
}

/** One generated checkpoint case: `view` may be a window into a larger buffer. */
export interface WeightsMutant {
  readonly cls: string;
  readonly seed: string;
  readonly file: string;
  readonly view: Uint8Array;
  /** `patterns` cases: hostile optional-weight patterns bound instead of the seed's. */
  readonly optional?: readonly string[];
}

/** Optional-weight patterns that took exponential time with a regex matcher, and over-long ones. */
function hostilePatterns(rng: Rng): string[] {
  const parts = ["*", "a", ".", "*a", "**", "b*", "x"];
  return Array.from({ length: rng.between(1, 6) }, () => {
    const n = rng.pick([3, 10, 40, 120, 300]);
    return Array.from({ length: n }, () => rng.pick(parts)).join("") + rng.pick(["", "c", "*", ".z"]);
  });
}

/** Seeds of the checkpoint fuzzer. */
export interface WeightsCorpus {
  readonly seeds: readonly WeightsSeed[];
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const SIZES: Readonly<Record<string, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** A file from a raw header text and data, the length field set to the header's byte length. */
export function rawFile(header: string, data: Uint8Array, lengthField?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** A header of `{name: [dtype, shape]}` laid out back to back, zero data (unpadded: data may be unaligned). */
function layout(tensors: Record<string, [string, number[]]>): Uint8Array {
  const header: Record<string, unknown> = {};
  let pos = 0;
  for (const [name, [dtype, shape]] of Object.entries(tensors)) {
    const len = shape.reduce((a, d) => a * d, 1) * SIZES[dtype]!;
    header[name] = { dtype, shape, data_offsets: [pos, pos + len] };
    pos += len;
  }
  const data = new Uint8Array(pos);
  for (let i = 0; i < pos; i++) data[i] = (i * 37 + 11) & 0xff;
  return rawFile(JSON.stringify(header), data);
}

const f32 = (n: number, k = 1) => Float32Array.from({ length: n }, (_, i) => (i + 1) * k - 3.25);

/** The fixture checkpoints with the tiny VAR's params, and small files covering every dtype and odd names. */
export function loadWeightsCorpus(): WeightsCorpus {
  const module = parseSpec(join(ROOT, "examples/var_tiny_a.var.ts"));
  const params = module.nodes.filter((n) => n.op === Op.Param).map((n) => n.params as OpParams[Op.Param]);
  const unique = [...new Map(params.map((p) => [`${p.source}:${p.name}`, p])).values()];
  const of = (source: "var" | "vae") => unique.filter((p) => p.source === source);
  const fixture = (f: string) => Deno.readFileSync(join(ROOT, "tests/fixtures/var_tiny_a", f));
  const seeds: WeightsSeed[] = [
    {
      name: "fixture/var.safetensors",
      bytes: fixture("var.safetensors"),
      source: "var",
      params: of("var"),
      optional: module.optionalWeights,
      weight: 5,
    },
    {
      name: "fixture/vae.safetensors",
      bytes: fixture("vae.safetensors"),
      source: "vae",
      params: of("vae"),
      optional: module.optionalWeights,
      weight: 1,
    },
  ];
  const p = (name: string, shape: number[]): ParamSpec => ({ name, shape, source: "var" });
  seeds.push({
    name: "mixed",
    bytes: writeSafetensors([
      { name: "a", dtype: "F32", shape: [2, 3], data: f32(6) },
      { name: "c", dtype: "I32", shape: [3], data: new Int32Array([7, -8, 2147483647]) },
      { name: "b", dtype: "I64", shape: [3, 1], data: new BigInt64Array([0n, -1n, 2n ** 40n]) },
      { name: "i", dtype: "I64", shape: [2], data: new BigInt64Array([5n, -6n]) },
      { name: "d", dtype: "F32", shape: [], data: f32(1) },
      { name: "e", dtype: "F32", shape: [0], data: f32(0) },
      { name: "z", dtype: "F32", shape: [1, 0, 3], data: f32(0) },
    ], { format: "pt", note: "x" }),
    params: [p("a", [2, 3]), p("d", []), p("e", [0]), p("z", [1, 0, 3])],
    source: "var",
    optional: ["b", "c", "i"],
    weight: 3,
  });
  const names = ["__proto__", "constructor", "toString", "blocks.0.attn.q", "é🦕", 'a"b\\c', "\u2028", "", "x.*"];
  seeds.push({
    name: "names",
    bytes: writeSafetensors(names.map((n, i) => ({ name: n, dtype: "F32" as const, shape: [2], data: f32(2, i) }))),
    params: names.map((n) => p(n, [2])),
    source: "var",
    optional: [],
    weight: 2,
  });
  seeds.push({
    name: "dtypes",
    bytes: layout({
      h: ["F16", [3]],
      g: ["BF16", [2, 2]],
      o: ["BOOL", [5]],
      u: ["U8", [3]],
      s: ["I8", [1]],
      t: ["I16", [3]],
      w: ["F64", [2]],
      f: ["F32", [3]],
      n: ["I32", [2]],
      l: ["I64", [1]],
    }),
    params: [p("f", [3])],
    source: "var",
    optional: ["*"],
    weight: 2,
  });
  seeds.push({
    name: "unaligned",
    bytes: layout({ q: ["U8", [1]], a: ["F32", [4]], b: ["I32", [3]], c: ["I64", [2]], d: ["F32", [1, 1]] }),
    params: [p("a", [4]), p("d", [1, 1])],
    source: "var",
    optional: ["q", "b", "c"],
    weight: 2,
  });
  seeds.push({
    name: "empty",
    bytes: rawFile("{}", new Uint8Array(0)),
    source: "var",
    params: [],
    optional: [],
    weight: 0.5,
  });
  seeds.push({
    name: "metadata-only",
    bytes: writeSafetensors([], { format: "pt", "": "", __proto__x: "y" }),
    source: "var",
    params: [],
    optional: [],
    weight: 0.5,
  });
  seeds.push({
    name: "matrix",
    bytes: writeSafetensors([{ name: "m", dtype: "F32", shape: [64, 64], data: f32(4096, 0.5) }]),
    params: [p("m", [64, 64])],
    source: "var",
    optional: [],
    weight: 1,
  });
  return { seeds };
}

// ── reading and rebuilding files ──────────────────────────────────────────

interface Split {
  readonly header: Record<string, unknown>;
  readonly headerText: string;
  readonly data: Uint8Array;
}

function split(bytes: Uint8Array): Split | undefined {
  if (bytes.length < 8) return undefined;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (n > bytes.length - 8) return undefined;
  const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  try {
    const header = JSON.parse(headerText);
    if (typeof header !== "object" || header === null || Array.isArray(header)) return undefined;
    return { header, headerText, data: bytes.subarray(8 + n) };
  } catch {
    return undefined;
  }
}

/** Marks a JSON value to be written as raw number text (beyond what a double can say). */
const raw = (text: string) => `\u0000RAW:${text}\u0000`;

function stringify(header: unknown): string {
  return JSON.stringify(header).replace(/"\\u0000RAW:([^"\\]*)\\u0000"/g, "$1");
}

function rebuild(header: unknown, data: Uint8Array, rng: Rng): Uint8Array {
  let text = stringify(header);
  if (rng.chance(0.7)) text += " ".repeat((8 - (new TextEncoder().encode(text).length % 8)) % 8);
  return rawFile(text, data);
}

type Entry = { dtype?: unknown; shape?: unknown; data_offsets?: unknown };

function tensorNames(h: Record<string, unknown>): string[] {
  return Object.keys(h).filter((k) => k !== "__metadata__");
}

function deep(d: number, kind: "array" | "object"): string {
  return kind === "array" ? "[".repeat(d) + "]".repeat(d) : '{"a":'.repeat(d) + "1" + "}".repeat(d);
}

const RAW_NUMBERS = [
  "9223372036854775808",
  "9223372036854775807",
  "18446744073709551615",
  "18446744073709551616",
  "9007199254740993",
  "9007199254740992",
  "4294967296",
  "-1",
  "-0",
  "1.5",
  "0.5",
  "1e308",
  "1e400",
  "-1e400",
  "4e0",
  "1E2",
  "0.0",
  "-9223372036854775808",
  "1e-400",
];
const ODD_VALUES: readonly unknown[] = [null, true, "3", [], {}, "0,4", ["1"], [null], -1, 1.5];
const HOSTILE_NAMES = [
  "__proto__",
  "constructor",
  "__metadata__",
  "",
  "a\u0000b",
  "🦕",
  "\u2028",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "x".repeat(100_000),
  "\u001b[2J\u001b[31mcleared",
  "a\nerror: forged line",
  "a\u202eb",
  "\ud800",
  "encoder.x",
  "blocks.0.attn.zero_k_bias",
];
const DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"];
const BAD_DTYPES = [
  "f32",
  "F8_E4M3",
  "U16",
  "U32",
  "U64",
  "C64",
  "",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
];

type HeaderMutator = (h: Record<string, unknown>, s: Split, rng: Rng) => void;

function pickEntry(h: Record<string, unknown>, rng: Rng): [string, Entry] | undefined {
  const names = tensorNames(h).filter((k) => typeof h[k] === "object" && h[k] !== null);
  if (names.length === 0) return undefined;
  const k = rng.pick(names);
  return [k, h[k] as Entry];
}

const HEADER_MUTATORS: readonly (readonly [number, string, HeaderMutator])[] = [
  [6, "dtype-lie", (h, _s, rng) => {
    const e = pickEntry(h, rng);
    if (!e) return;
    e[1].dtype = rng.chance(0.6) ? rng.pick(DTYPES) : rng.chance(0.7) ? rng.pick(BAD_DTYPES) : rng.pick(ODD_VALUES);
  }],
  [8, "shape-lie", (h, _s, rng) => {
    const e = pickEntry(h, rng);
    if (!e) return;
    const shape = Array.isArray(e[1].shape) ? [...e[1].shape as unknown[]] : [];
    switch (rng.int(9)) {
      case 0:
        shape.push(rng.pick([1, 2, 0]));
        break;
      case 1:
        shape.pop();
        break;
      case 2:
        if (shape.length) shape[rng.int(shape.length)] = (shape[0] as number) * 2;
        break;
      case 3:
        if (shape.length) shape[rng.int(shape.length)] = raw(rng.pick(RAW_NUMBERS));
        else shape.push(raw(rng.pick(RAW_NUMBERS)));
        break;
      case 4:
        shape.splice(0, shape.length, ...rng.pick([[2 ** 32, 2 ** 32], [3, 2 ** 53], [2 ** 53 - 1, 2 ** 53 - 1, 8]]));
        break;
      case 5:
        e[1].shape = rng.pick(ODD_VALUES);
        return;
      case 6:
        e[1].shape = Array<number>(rng.pick([1000, 100_000])).fill(1);
        return;
      case 7:
        e[1].shape = raw(deep(rng.pick([100, 10_000, 300_000]), "array"));
        return;
      default:
        shape.reverse();
    }
    e[1].shape = shape;
  }],
  [10, "offsets-lie", (h, s, rng) => {
    const e = pickEntry(h, rng);
    if (!e) return;
    const [b, en] = Array.isArray(e[1].data_offsets) ? e[1].data_offsets as number[] : [0, 0];
    const len = en! - b!, size = s.data.length;
    const others = tensorNames(h).map((k) => (h[k] as Entry)?.data_offsets).filter(Array.isArray) as number[][];
    const other = others.length ? rng.pick(others) : [0, 0];
    const choices: unknown[][] = [
      [en, b],
      [b, en! + 1],
      [b! - 1, en! - 1],
      [0, len],
      [size, size + len],
      [size + 1, size + 1 + len],
      [size - len + 1, size + 1],
      [-4, len - 4],
      [b! + 0.5, en! + 0.5],
      [raw("9223372036854775808"), raw("9223372036854775808")],
      [0, raw("18446744073709551615")],
      [raw(rng.pick(RAW_NUMBERS)), en],
      [b],
      [b, en, en],
      [other[0], other[0]! + len],
      [2 ** 53, 2 ** 53 + len],
      [1e308, 1e308],
      [String(b), String(en)],
      [b, b],
      [en, en],
    ];
    e[1].data_offsets = rng.chance(0.9) ? rng.pick(choices) : rng.pick(ODD_VALUES);
  }],
  [5, "rename", (h, _s, rng) => {
    const e = pickEntry(h, rng);
    if (!e) return;
    delete h[e[0]];
    h[rng.chance(0.8) ? rng.pick(HOSTILE_NAMES) : rng.pick(tensorNames(h).concat("x"))] = e[1];
  }],
  [2, "drop-entry", (h, _s, rng) => {
    const e = pickEntry(h, rng);
    if (e) delete h[e[0]];
  }],
  [3, "add-entry", (h, s, rng) => {
    const n = s.data.length;
    const b = rng.int(n + 1), len = rng.pick([0, 1, 4, 8, n - b]);
    h[rng.chance(0.5) ? "extra" : rng.pick(HOSTILE_NAMES)] = {
      dtype: rng.pick(DTYPES),
      shape: [Math.max(0, Math.floor(len / 4))],
      data_offsets: [b, b + len],
    };
  }],
  [4, "metadata-lie", (h, _s, rng) => {
    const choices: unknown[] = [
      "x",
      [],
      1,
      null,
      { a: 1 },
      { a: null },
      { a: { b: "c" } },
      { ["__proto__"]: "x" },
      { a: "x".repeat(100_000) },
      raw(deep(rng.pick([100, 100_000]), "object")),
      { a: raw(deep(rng.pick([100, 100_000]), "array")) },
    ];
    Object.defineProperty(h, "__metadata__", { value: rng.pick(choices), enumerable: true, writable: true });
  }],
];

type FileMutator = (bytes: Uint8Array, rng: Rng, seeds: readonly WeightsSeed[]) => Uint8Array;

function headerLen(bytes: Uint8Array): number {
  if (bytes.length < 8) return 0;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  return Math.min(n, bytes.length - 8);
}

function withLength(bytes: Uint8Array, n: bigint): Uint8Array {
  const out = bytes.slice();
  if (out.length >= 8) new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, n), true);
  return out;
}

function headerEdit(text: string, data: Uint8Array, keepLength: boolean, old: number): Uint8Array {
  const file = rawFile(text, data);
  return keepLength ? withLength(file, BigInt(old)) : file;
}

const FILE_MUTATORS: readonly (readonly [number, string, FileMutator])[] = [
  [10, "bit-flip", (bytes, rng) => {
    const out = bytes.slice();
    const n = rng.between(1, 8), hot = 8 + headerLen(bytes) + 16;
    for (let i = 0; i < n && out.length > 0; i++) {
      const at = rng.chance(0.6) ? rng.int(Math.min(hot, out.length)) : rng.int(out.length);
      out[at]! ^= 1 << rng.int(8);
    }
    return out;
  }],
  [5, "byte-set", (bytes, rng) => {
    const out = bytes.slice();
    const n = rng.between(1, 16), hot = 8 + headerLen(bytes);
    for (let i = 0; i < n && out.length > 0; i++) {
      out[rng.chance(0.7) ? rng.int(Math.min(hot, out.length)) : rng.int(out.length)] = rng.pick([
        0,
        0xff,
        0x7f,
        0x80,
        rng.int(256),
      ]);
    }
    return out;
  }],
  [10, "truncate", (bytes, rng) => {
    const n = headerLen(bytes);
    const ends = [rng.int(8), 8 + rng.int(n + 1), 8 + n + rng.int(bytes.length - 8 - n + 1), 0, bytes.length - 1];
    const s = split(bytes);
    if (s) {
      for (const v of Object.values(s.header)) {
        const o = (v as Entry)?.data_offsets;
        if (Array.isArray(o)) { for (const x of o) ends.push(8 + n + (x as number) + rng.pick([-1, 0, 1])); }
      }
    }
    return bytes.slice(0, Math.max(0, Math.min(bytes.length, rng.pick(ends))));
  }],
  [3, "extend", (bytes, rng) => {
    const extra = rng.chance(0.5) ? rng.bytes(rng.between(1, 100)) : new Uint8Array(rng.between(1, 100));
    const out = new Uint8Array(bytes.length + extra.length);
    out.set(bytes);
    out.set(extra, bytes.length);
    return out;
  }],
  [8, "header-length", (bytes, rng) => {
    const n = BigInt(headerLen(bytes)), len = BigInt(bytes.length);
    return withLength(
      bytes,
      rng.pick([
        0n,
        1n,
        2n ** 63n,
        2n ** 64n - 1n,
        2n ** 53n,
        2n ** 53n + 1n,
        2n ** 32n,
        2n ** 31n,
        BigInt(MAX_HEADER_BYTES),
        BigInt(MAX_HEADER_BYTES) + 1n,
        n - 1n,
        n + 1n,
        n + 8n,
        len - 8n,
        len - 7n,
        len,
      ]),
    );
  }],
  [5, "duplicate-name", (bytes, rng) => {
    const s = split(bytes);
    if (!s) return bytes;
    const names = Object.keys(s.header);
    if (names.length === 0) return bytes;
    const k = rng.pick(names);
    const key = rng.chance(0.3) && k.length > 0
      ? `"\\u${k.charCodeAt(0).toString(16).padStart(4, "0")}${JSON.stringify(k).slice(2)}`
      : JSON.stringify(k);
    const text = s.headerText.trimEnd();
    const dup = `${key}:${stringify(s.header[k])}`;
    const joined = rng.chance(0.5) ? `{${dup},${text.slice(1)}` : `${text.slice(0, -1)},${dup}}`;
    return rawFile(joined, s.data);
  }],
  [3, "non-object-header", (bytes, rng) => {
    const s = split(bytes);
    const data = s?.data ?? new Uint8Array(0);
    return rawFile(rng.pick(["[]", '"x"', "1", "null", "true", "[{}]", "", "   ", "{", "}", "{}{}", '{"a":1}x']), data);
  }],
  [3, "deep-json", (bytes, rng) => {
    const s = split(bytes);
    const d = rng.pick([1000, 100_000, 1_000_000]);
    const kind = rng.chance(0.5) ? "array" : "object";
    const body = deep(d, kind);
    const where = rng.int(3);
    const text = where === 0 ? body : where === 1 ? `{"a":${body}}` : `{"__metadata__":{"a":${body}}}`;
    return rawFile(text, s?.data ?? new Uint8Array(0));
  }],
  [5, "json-edit", (bytes, rng) => {
    const s = split(bytes);
    if (!s) return bytes;
    let text = s.headerText;
    const n = rng.between(1, 4);
    for (let i = 0; i < n; i++) {
      const at = rng.int(text.length + 1);
      const ch = rng.pick([
        "{",
        "}",
        "[",
        "]",
        '"',
        ",",
        ":",
        "\\",
        " ",
        "0",
        "9",
        "-",
        ".",
        "e",
        "\u2028",
        "\u0000",
        "é",
      ]);
      const op = rng.int(3);
      text = op === 0
        ? text.slice(0, at) + ch + text.slice(at)
        : op === 1
        ? text.slice(0, at) + text.slice(at + 1)
        : text.slice(0, at) + ch + text.slice(at + 1);
    }
    return headerEdit(text, s.data, rng.chance(0.3), headerLen(bytes));
  }],
  [3, "encoding", (bytes, rng) => {
    const s = split(bytes);
    if (!s) return bytes;
    const json = new TextEncoder().encode(s.headerText.trimEnd());
    const join = (...parts: ArrayLike<number>[]) => {
      const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
      return out;
    };
    const variants: (() => Uint8Array)[] = [
      () => join([0xef, 0xbb, 0xbf], json),
      () => join(json, [0, 0, 0, 0]),
      () => join(json, [0x09, 0x0a, 0x0d]),
      () => join(json, [0xff]),
      () => join(json.subarray(0, 2), [0xc0, 0x80], json.subarray(2)),
      () => join(json.subarray(0, 2), [0xed, 0xa0, 0x80], json.subarray(2)),
      () => join(json, [0x20, 0x78]),
    ];
    const h = rng.pick(variants)();
    const out = new Uint8Array(8 + h.length + s.data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    out.set(s.data, 8 + h.length);
    return out;
  }],
  [1, "huge-header", (bytes, rng) => {
    const s = split(bytes);
    const data = s?.data ?? new Uint8Array(0);
    switch (rng.int(3)) {
      case 0:
        return withLength(bytes, BigInt(bytes.length - 8));
      case 1: {
        const text = (s ? stringify(s.header) : "{}") + " ".repeat(rng.pick([1 << 20, 5 << 20]));
        return rawFile(text, data);
      }
      default:
        return withLength(rawFile("{}", new Uint8Array(rng.pick([0, 1024]))), BigInt(MAX_HEADER_BYTES));
    }
  }],
  [3, "splice", (bytes, rng, seeds) => {
    const a = split(bytes), b = split(rng.pick(seeds).bytes);
    if (!a || !b) return bytes;
    return rng.chance(0.5) ? rawFile(a.headerText, b.data) : rawFile(b.headerText, a.data);
  }],
];

/** Mutation classes, for reports. */
export const WEIGHTS_CLASSES = [
  ...HEADER_MUTATORS.map(([, n]) => n),
  ...FILE_MUTATORS.map(([, n]) => n),
  "embed",
  "patterns",
];

/** Builds the mutant of one case from its generator. */
export function makeWeightsMutant(corpus: WeightsCorpus, rng: Rng, index: number): WeightsMutant {
  const seed = rng.weighted(corpus.seeds.map((s) => [s.weight, s] as const));
  const all: (readonly [number, string, "h" | "f"])[] = [
    ...HEADER_MUTATORS.map(([w, n]) => [w, n, "h"] as const),
    ...FILE_MUTATORS.map(([w, n]) => [w, n, "f"] as const),
    [4, "embed", "f"],
  ];
  if (rng.chance(0.04)) {
    // The seed's checkpoint, bound under hostile patterns: matching must stay fast (the case timeout).
    return {
      cls: "patterns",
      seed: seed.name,
      file: `mem/patterns#${index}`,
      view: seed.bytes,
      optional: hostilePatterns(rng),
    };
  }
  const [, cls] = rng.weighted(all.map((m) => [m[0], m] as const));
  let bytes = seed.bytes;
  const rounds = rng.chance(0.2) ? 2 : 1;
  for (let r = 0; r < rounds; r++) {
    const name = r === 0 ? cls : rng.weighted(all.map((m) => [m[0], m[1]] as const));
    bytes = mutateOnce(bytes, name, rng, corpus);
  }
  const file = `mem/${seed.name.replace(/[^A-Za-z0-9_.-]/g, "_")}#${index}`;
  if (cls !== "embed" && !rng.chance(0.15)) return { cls, seed: seed.name, file, view: bytes };
  // A window into a larger buffer, at an odd offset, with canary bytes around it.
  const pad = rng.between(1, 7), tail = rng.between(1, 64);
  const buf = new Uint8Array(pad + bytes.length + tail).fill(0xa5);
  buf.set(bytes, pad);
  return { cls, seed: seed.name, file, view: buf.subarray(pad, pad + bytes.length) };
}

function mutateOnce(bytes: Uint8Array, name: string, rng: Rng, corpus: WeightsCorpus): Uint8Array {
  const h = HEADER_MUTATORS.find(([, n]) => n === name);
  if (h) {
    const s = split(bytes);
    if (!s) return bytes;
    const header = JSON.parse(s.headerText); // a fresh copy (structuredClone overflows on deep JSON)
    h[2](header, s, rng);
    try {
      return rebuild(header, s.data, rng);
    } catch (e) {
      if (e instanceof RangeError) return bytes; // JSON.stringify of a deeply nested header from an earlier round
      throw e;
    }
  }
  const f = FILE_MUTATORS.find(([, n]) => n === name);
  return f ? f[2](bytes, rng, corpus.seeds) : bytes;
}

// ── the oracle ────────────────────────────────────────────────────────────

/** Thrown by the allocation guard: an array allocated from a size larger than the file allows. */
class AllocationError extends Error {
  override name = "AllocationError";
}

const TRACKED = [
  "ArrayBuffer",
  "SharedArrayBuffer",
  "Uint8Array",
  "Uint8ClampedArray",
  "Int8Array",
  "Uint16Array",
  "Int16Array",
  "Uint32Array",
  "Int32Array",
  "Float32Array",
  "Float64Array",
  "BigInt64Array",
  "BigUint64Array",
] as const;

/**
 * Replaces the global array constructors with guards that refuse (AllocationError) any allocation of
 * more than `limit` elements made from a number; returns the function that puts them back.
 */
function guardAllocations(limit: number): () => void {
  const g = globalThis as unknown as Record<string, unknown>;
  const saved = TRACKED.map((name) => [name, g[name]] as const);
  for (const [name, ctor] of saved) {
    if (typeof ctor !== "function") continue;
    g[name] = new Proxy(ctor, {
      construct(target, args, newTarget) {
        const n = args[0];
        if ((typeof n === "number" || typeof n === "bigint") && Number(n) > limit) {
          throw new AllocationError(`new ${name}(${n}) for a file of ${limit} bytes`);
        }
        return Reflect.construct(target, args, newTarget === g[name] ? target : newTarget);
      },
    });
  }
  return () => {
    for (const [name, ctor] of saved) g[name] = ctor;
  };
}

/** How a checkpoint case ended. */
export interface WeightsVerdict {
  readonly outcome: Outcome;
  readonly detail: string;
}

/** Longest error message a rejection may print (names are cut, lists are capped). */
const MAX_MESSAGE = 8192;

function judgeError(e: unknown, file: string, stage: string): WeightsVerdict {
  if (e instanceof Error && (e instanceof SafetensorsError || e instanceof WeightsError)) {
    // Messages reach terminals: no raw control characters besides line breaks, no megabyte lines.
    // deno-lint-ignore no-control-regex -- matching control characters is the point
    const raw = /[\u0000-\u0008\u000b-\u001f\u007f]/.exec(e.message);
    if (raw || e.message.length > MAX_MESSAGE) {
      return {
        outcome: "failure",
        detail: `${stage}: ${e.name} message ${raw ? `holds a raw U+${raw[0].charCodeAt(0).toString(16)}` : ""}${
          e.message.length > MAX_MESSAGE ? ` is ${e.message.length} characters long` : ""
        }`,
      };
    }
  }
  if (e instanceof SafetensorsError) {
    return e.message.startsWith(`${file}: `)
      ? { outcome: "rejected", detail: `${stage}:SafetensorsError` }
      : { outcome: "failure", detail: `${stage}: SafetensorsError not naming the file: ${e.message.slice(0, 200)}` };
  }
  if (e instanceof WeightsError) {
    const lines = e.message.split("\n");
    const bad = lines.find((l) => !l.startsWith(`${file}: `) && !/^… and \d+ more problems$/.test(l));
    return bad === undefined
      ? { outcome: "rejected", detail: `${stage}:WeightsError` }
      : { outcome: "failure", detail: `${stage}: WeightsError line not naming the file: ${bad.slice(0, 200)}` };
  }
  return { outcome: "failure", detail: `${stage}: ${describeError(e)}` };
}

/** A typed array returned by the reader must be a copy or lie inside the given bytes. */
function outside(t: ArrayBufferView, view: Uint8Array): boolean {
  if (t.buffer !== view.buffer) return false;
  return t.byteOffset < view.byteOffset || t.byteOffset + t.byteLength > view.byteOffset + view.byteLength;
}

function checkTensors(st: SafetensorsFile, view: Uint8Array, file: string): WeightsVerdict | undefined {
  const dv = new DataView(view.buffer, view.byteOffset, view.byteLength);
  for (const [name, e] of st.entries) {
    const numel = e.shape.reduce((a, d) => a * d, 1);
    if (!(e.offset >= 8 && e.offset + e.byteLength <= view.length && numel * SIZES[e.dtype]! === e.byteLength)) {
      return { outcome: "failure", detail: `entry "${name}" [${e.offset}, +${e.byteLength}) is outside the file` };
    }
    try {
      if (e.dtype === "F32" || e.dtype === "I32") {
        const t = e.dtype === "F32" ? st.f32(name) : st.i32(name);
        if (outside(t, view)) return { outcome: "failure", detail: `tensor "${name}" views bytes outside the file` };
        if (t.length !== numel) {
          return { outcome: "failure", detail: `tensor "${name}" has ${t.length} elements, not ${numel}` };
        }
        const bits = new Uint32Array(t.buffer, t.byteOffset, t.length);
        for (const i of numel > 0 ? [0, numel - 1] : []) {
          if (bits[i] !== dv.getUint32(e.offset + 4 * i, true)) {
            return { outcome: "failure", detail: `tensor "${name}" element ${i} differs from the file's bytes` };
          }
        }
      } else if (e.dtype === "I64") {
        const t = st.i32(name);
        if (t.length !== numel) {
          return { outcome: "failure", detail: `tensor "${name}" has ${t.length} elements, not ${numel}` };
        }
        for (let i = 0; i < numel; i++) {
          if (BigInt(t[i]!) !== dv.getBigInt64(e.offset + 8 * i, true)) {
            return { outcome: "failure", detail: `I64 tensor "${name}" element ${i} differs from the file's bytes` };
          }
        }
      } else {
        st.f32(name);
        return { outcome: "failure", detail: `f32() read tensor "${name}" of dtype ${e.dtype}` };
      }
    } catch (err) {
      const v = judgeError(err, file, "read");
      if (v.outcome === "failure") return v;
    }
  }
  return undefined;
}

/** Parses, reads back and binds one mutant, and judges the result. */
export function runWeightsMutant(m: WeightsMutant, corpus: WeightsCorpus): WeightsVerdict {
  const seed = corpus.seeds.find((s) => s.name === m.seed)!;
  const restore = guardAllocations(m.view.length + 4096);
  try {
    let st: SafetensorsFile;
    try {
      st = parseSafetensors(m.view, m.file);
    } catch (e) {
      return judgeError(e, m.file, "parse");
    }
    const bad = checkTensors(st, m.view, m.file);
    if (bad) return bad;
    try {
      bindWeights(seed.params, { [seed.source]: st }, m.optional ?? seed.optional);
      return { outcome: "ok", detail: "bound" };
    } catch (e) {
      return judgeError(e, m.file, "bind");
    }
  } finally {
    restore();
  }
}

/** The mutant as a file to keep. */
export function weightsArtifact(m: WeightsMutant): Artifact {
  return { ext: "safetensors", bytes: m.view.slice() };
}
