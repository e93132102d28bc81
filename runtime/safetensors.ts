/** Safetensors reader (validating, zero-copy where aligned) and writer (aligned standard layout). */
import { escapeUnprintable, UNPRINTABLE } from "./text.ts";

/** Element types defined by the safetensors format that this reader accepts. */
export type StDType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

/** One tensor's header entry, with its location resolved to absolute file offsets. */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: StDType;
  readonly shape: readonly number[];
  /** absolute byte offset in the file */
  readonly offset: number;
  readonly byteLength: number;
}

/** A malformed or unusable safetensors file; the message starts with the file path. */
export class SafetensorsError extends Error {
  override name = "SafetensorsError";
}

/** A parsed safetensors file; tensor data stays in `bytes`. */
export interface SafetensorsFile {
  readonly file: string;
  readonly bytes: Uint8Array;
  /** Tensors in data order (ascending offset). */
  readonly entries: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  /** F32 tensor as Float32Array: a view into `bytes` when 4-byte aligned, else a copy. Errors (SafetensorsError) naming the tensor if missing or dtype is not F32. */
  f32(name: string): Float32Array;
  /** Integer tensor (I64 or I32) converted to Int32Array; errors if a value does not fit in int32, naming tensor and index. An aligned I32 tensor is returned as a view. */
  i32(name: string): Int32Array;
}

/** A tensor for {@link writeSafetensors}; `data` must match `dtype` and hold exactly numel(shape) elements. */
export interface TensorToWrite {
  name: string;
  dtype: "F32" | "I64" | "I32";
  shape: readonly number[];
  data: Float32Array | BigInt64Array | Int32Array;
}

const ELEMENT_SIZE: Readonly<Record<StDType, number>> = {
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

const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const METADATA_KEY = "__metadata__";

// Typed-array views reinterpret raw bytes, which is only correct on little-endian hosts.
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDType(x: unknown): x is StDType {
  return typeof x === "string" && Object.hasOwn(ELEMENT_SIZE, x);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function isCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/** Longest tensor name accepted (official names are under 60 characters). */
const MAX_NAME_LENGTH = 1024;
/**
 * Short, bounded rendering of a JSON value for error messages: compact JSON, cut at 80 characters.
 * Only the part that is shown is visited: JSON.stringify of a header value nested millions deep
 * takes seconds (and String() of one overflows the stack).
 */
function show(x: unknown): string {
  const limit = 80;
  let s = "";
  // Appends the JSON of v; false once there is enough text to cut (so recursion stays shallow).
  const put = (v: unknown): boolean => {
    if (Array.isArray(v)) {
      s += "[";
      for (let i = 0; i < v.length; i++) {
        if (i > 0) s += ",";
        if (s.length > limit || !put(v[i])) return false;
      }
      s += "]";
    } else if (isPlainObject(v)) {
      s += "{";
      let first = true;
      for (const k in v) {
        s += (first ? "" : ",") + JSON.stringify(k.length > limit ? k.slice(0, limit) : k) + ":";
        first = false;
        if (s.length > limit || !put(v[k])) return false;
      }
      s += "}";
    } else {
      const text = typeof v === "string" && v.length > limit ? JSON.stringify(v.slice(0, limit)) : JSON.stringify(v);
      s += text ?? String(v);
    }
    return s.length <= limit;
  };
  put(x);
  return escapeUnprintable(s.length > limit ? s.slice(0, 77) + "..." : s); // JSON leaves DEL and C1 characters raw
}

/** Top-level keys of a JSON object text, in order, duplicates included (JSON.parse keeps only the last). Assumes `text` is valid JSON. */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let i = 0;
  const skipWs = () => {
    while (i < text.length && " \t\r\n".includes(text[i])) i++;
  };
  // Returns the index just past the string literal starting at `start`.
  const stringEnd = (start: number): number => {
    let j = start + 1;
    while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
    return j + 1;
  };
  skipWs();
  i++; // "{"
  skipWs();
  if (text[i] === "}") return keys;
  for (;;) {
    skipWs();
    const end = stringEnd(i);
    keys.push(JSON.parse(text.slice(i, end)) as string);
    i = end;
    skipWs();
    i++; // ":"
    // Skip the value: strings are skipped whole, brackets tracked by depth.
    let depth = 0;
    for (;;) {
      const c = text[i];
      if (c === '"') {
        i = stringEnd(i);
        continue;
      }
      if (depth === 0 && (c === "," || c === "}")) break;
      if (c === "{" || c === "[") depth++;
      else if (c === "}" || c === "]") depth--;
      i++;
    }
    if (text[i] === "}") return keys;
    i++; // ","
  }
}

/** Views of a file's tensors keep its byte array alive. */
const owners = new WeakMap<ArrayBufferView, Uint8Array>();

class ParsedFile implements SafetensorsFile {
  constructor(
    readonly file: string,
    readonly bytes: Uint8Array,
    readonly entries: ReadonlyMap<string, TensorEntry>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  private entry(name: string, allowed: readonly StDType[]): TensorEntry {
    const e = this.entries.get(name);
    if (e === undefined) {
      throw new SafetensorsError(
        `${this.file}: tensor "${name}": expected a tensor of dtype ${
          allowed.join(" or ")
        }, found no tensor with that name`,
      );
    }
    if (!allowed.includes(e.dtype)) {
      throw new SafetensorsError(
        `${this.file}: tensor "${name}": expected dtype ${allowed.join(" or ")}, found ${e.dtype}`,
      );
    }
    if (!LITTLE_ENDIAN_HOST) {
      throw new SafetensorsError(
        `${this.file}: tensor "${name}": expected a little-endian host, found big-endian`,
      );
    }
    return e;
  }

  f32(name: string): Float32Array {
    const e = this.entry(name, ["F32"]);
    const start = this.bytes.byteOffset + e.offset;
    if (start % 4 === 0) {
      const view = new Float32Array(this.bytes.buffer, start, e.byteLength / 4);
      owners.set(view, this.bytes); // the file's buffer (maybe freed when collected) lives as long as its views
      return view;
    }
    const copy = this.bytes.slice(e.offset, e.offset + e.byteLength);
    return new Float32Array(copy.buffer, 0, e.byteLength / 4);
  }

  i32(name: string): Int32Array {
    const e = this.entry(name, ["I64", "I32"]);
    const start = this.bytes.byteOffset + e.offset;
    if (e.dtype === "I32") {
      if (start % 4 === 0) {
        const view = new Int32Array(this.bytes.buffer, start, e.byteLength / 4);
        owners.set(view, this.bytes);
        return view;
      }
      const copy = this.bytes.slice(e.offset, e.offset + e.byteLength);
      return new Int32Array(copy.buffer, 0, e.byteLength / 4);
    }
    // I64: a value fits in int32 iff its high word is the sign extension of its low word.
    const view = new DataView(this.bytes.buffer, start, e.byteLength);
    const n = e.byteLength / 8;
    const out = new Int32Array(n);
    for (let k = 0; k < n; k++) {
      const lo = view.getInt32(8 * k, true);
      const hi = view.getInt32(8 * k + 4, true);
      if (hi !== (lo < 0 ? -1 : 0)) {
        throw new SafetensorsError(
          `${this.file}: tensor "${name}": expected int32-range values, found ${
            view.getBigInt64(8 * k, true)
          } at index ${k}`,
        );
      }
      out[k] = lo;
    }
    return out;
  }
}

/** Parse and validate a safetensors image held in memory; `file` is used in error messages. Tensor data is not copied. */
export function parseSafetensors(
  bytes: Uint8Array,
  file: string,
): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${file}: ${msg}`);
  };
  if (bytes.length < 8) {
    fail(
      `expected at least 8 bytes (header length), found ${bytes.length} bytes`,
    );
  }
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset, 8)
    .getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    fail(
      `header length ${headerLen} exceeds the limit of ${MAX_HEADER_BYTES} bytes`,
    );
  }
  if (headerLen > BigInt(bytes.length - 8)) {
    fail(
      `header length ${headerLen} exceeds the ${bytes.length - 8} bytes after the length field`,
    );
  }
  const n = Number(headerLen);
  const dataStart = 8 + n;
  const dataSize = bytes.length - dataStart;

  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(
      bytes.subarray(8, dataStart),
    );
  } catch {
    fail(`expected a UTF-8 JSON header, found invalid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(
      `expected a JSON header, found invalid JSON (${
        escapeUnprintable(err instanceof Error ? err.message : String(err))
      })`,
    );
  }
  if (!isPlainObject(header)) {
    fail(`expected the header to be a JSON object, found ${show(header)}`);
  }
  const obj = header as Record<string, unknown>;

  const seen = new Set<string>();
  for (const key of topLevelKeys(text)) {
    if (seen.has(key)) {
      fail(
        key === METADATA_KEY
          ? `expected one ${METADATA_KEY} entry, found it more than once`
          : `tensor "${key}": expected a unique name, found it more than once in the header`,
      );
    }
    seen.add(key);
  }

  let metadata: Record<string, string> = {};
  if (Object.hasOwn(obj, METADATA_KEY)) {
    const meta = obj[METADATA_KEY];
    if (!isPlainObject(meta)) {
      fail(
        `expected ${METADATA_KEY} to be an object of strings, found ${show(meta)}`,
      );
    }
    const pairs = Object.entries(meta as Record<string, unknown>);
    for (const [k, v] of pairs) {
      if (typeof v !== "string") {
        fail(
          `${METADATA_KEY} key ${show(k)}: expected a string value, found ${show(v)}`,
        );
      }
    }
    // fromEntries defines own properties, so a "__proto__" key stays data.
    metadata = Object.fromEntries(pairs) as Record<string, string>;
  }

  const list: TensorEntry[] = [];
  for (const [name, raw] of Object.entries(obj)) {
    if (name === METADATA_KEY) continue;
    // Names reach error messages and terminals: no control or direction characters, no 50 MB names.
    if (name.length > MAX_NAME_LENGTH || UNPRINTABLE.test(name)) {
      fail(
        `tensor name ${
          show(name)
        } (${name.length} characters): expected at most ${MAX_NAME_LENGTH} printable characters`,
      );
    }
    const bad = (msg: string): never => fail(`tensor "${name}": ${msg}`);
    if (!isPlainObject(raw)) {
      bad(
        `expected an object with dtype, shape, data_offsets, found ${show(raw)}`,
      );
    }
    const { dtype, shape, data_offsets: offsets } = raw as Record<
      string,
      unknown
    >;
    if (!isDType(dtype)) {
      bad(
        `expected dtype one of ${Object.keys(ELEMENT_SIZE).join(", ")}, found ${show(dtype)}`,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      bad(
        `expected shape to be an array of non-negative integers, found ${show(shape)}`,
      );
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every(isCount) || offsets[0] > offsets[1]
    ) {
      bad(
        `expected data_offsets [begin, end] of non-negative integers with begin <= end, found ${show(offsets)}`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataSize) {
      bad(
        `expected data_offsets end <= ${dataSize} (data section size), found ${end}`,
      );
    }
    // BigInt so that absurd shapes cannot overflow.
    const dims = shape as number[];
    const numel = dims.reduce((p, d) => p * BigInt(d), 1n);
    const expected = numel * BigInt(ELEMENT_SIZE[dtype as StDType]);
    if (expected !== BigInt(end - begin)) {
      bad(
        `expected ${expected} bytes (${numel} elements of ${dtype} for shape ${show(dims)}), found ${
          end - begin
        } bytes in data_offsets [${begin}, ${end}]`,
      );
    }
    list.push({
      name,
      dtype: dtype as StDType,
      shape: Object.freeze([...dims]),
      offset: dataStart + begin,
      byteLength: end - begin,
    });
  }

  // Sorted by offset, any overlap shows up between neighbours (empty tensors occupy nothing).
  list.sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  let prev: TensorEntry | undefined;
  for (const e of list) {
    if (e.byteLength === 0) continue;
    if (prev !== undefined && e.offset < prev.offset + prev.byteLength) {
      const r = (t: TensorEntry) => `[${t.offset - dataStart}, ${t.offset - dataStart + t.byteLength}]`;
      fail(
        `tensor "${e.name}" ${r(e)} overlaps tensor "${prev.name}" ${r(prev)}: expected disjoint data ranges`,
      );
    }
    prev = e;
  }

  const entries = new Map<string, TensorEntry>();
  for (const e of list) entries.set(e.name, Object.freeze(e));
  return new ParsedFile(file, bytes, entries, Object.freeze(metadata));
}

/** Where `readSafetensors` puts the file's bytes. */
export interface ReadOptions {
  /**
   * A buffer of exactly `bytes` bytes to read the file into (e.g. memory that kernels read in place),
   * or null for an ordinary one.
   */
  readonly alloc?: (bytes: number) => Uint8Array | null;
}

/** Bytes per read call: large enough to amortise the call, small enough to stay under any per-call limit. */
const READ_CHUNK = 64 * 2 ** 20;

/**
 * Read and parse a safetensors file; errors are SafetensorsError starting with `path`. Only a
 * regular file is read (devices, FIFOs and sockets are refused before reading), into one buffer sized
 * from its status, and never past that size.
 */
export function readSafetensors(path: string, options: ReadOptions = {}): Promise<SafetensorsFile> {
  const fail = (what: string): never => {
    throw new SafetensorsError(`${path}: ${what}`);
  };
  const reason = (err: unknown) => err instanceof Error ? err.message : String(err);
  let file: Deno.FsFile | undefined;
  try {
    const notRegular = "cannot read file: not a regular file (a directory, device, FIFO or socket)";
    try {
      // Checked before opening: opening a FIFO waits for a writer.
      if (!Deno.statSync(path).isFile) fail(notRegular);
      file = Deno.openSync(path);
    } catch (err) {
      if (err instanceof SafetensorsError) throw err;
      fail(`cannot read file: ${reason(err)}`);
    }
    const info = file!.statSync();
    if (!info.isFile) fail(notRegular);
    const size = info.size;
    let bytes: Uint8Array;
    try {
      bytes = options.alloc?.(size) ?? new Uint8Array(size);
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      fail(`cannot read file: its ${size} bytes do not fit in memory`);
    }
    let at = 0;
    try {
      while (at < size) {
        const n = file!.readSync(bytes!.subarray(at, Math.min(size, at + READ_CHUNK)));
        if (n === null || n === 0) break;
        at += n;
      }
    } catch (err) {
      fail(`cannot read file: ${reason(err)}`);
    }
    if (at < size) fail(`cannot read file: it ended after ${at} of ${size} bytes (changed while reading?)`);
    return Promise.resolve(parseSafetensors(bytes!, path));
  } catch (err) {
    return Promise.reject(err);
  } finally {
    file?.close();
  }
}

const WRITE_TYPES = {
  F32: { size: 4, array: Float32Array },
  I64: { size: 8, array: BigInt64Array },
  I32: { size: 4, array: Int32Array },
} as const;

/** Standard layout: u64 LE header length N, JSON header padded with spaces to a multiple of 8, data. Tensors laid out largest element size first so each is aligned to its element size. Optional __metadata__. */
export function writeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): Uint8Array {
  if (!LITTLE_ENDIAN_HOST) {
    throw new Error("writeSafetensors: expected a little-endian host");
  }
  const names = new Set<string>();
  for (const t of tensors) {
    const where = `writeSafetensors: tensor "${t.name}"`;
    if (t.name === METADATA_KEY || names.has(t.name)) {
      throw new Error(`${where}: expected a unique tensor name`);
    }
    names.add(t.name);
    if (!Object.hasOwn(WRITE_TYPES, t.dtype)) {
      throw new Error(
        `${where}: expected dtype F32, I64 or I32, found ${show(t.dtype)}`,
      );
    }
    const kind = WRITE_TYPES[t.dtype];
    if (!(t.data instanceof kind.array)) {
      throw new Error(
        `${where}: expected ${kind.array.name} data for ${t.dtype}, found ${t.data.constructor.name}`,
      );
    }
    if (!t.shape.every(isCount)) {
      throw new Error(
        `${where}: expected non-negative integer shape, found ${show(t.shape)}`,
      );
    }
    const numel = t.shape.reduce((p, d) => p * d, 1);
    if (numel !== t.data.length) {
      throw new Error(
        `${where}: expected ${numel} elements for shape ${show(t.shape)}, found ${t.data.length}`,
      );
    }
  }

  // Stable sort: largest element size first keeps every tensor aligned.
  const order = [...tensors].sort((a, b) => WRITE_TYPES[b.dtype].size - WRITE_TYPES[a.dtype].size);
  const fields: [string, unknown][] = [];
  let pos = 0;
  for (const t of order) {
    const len = t.data.byteLength;
    fields.push([t.name, {
      dtype: t.dtype,
      shape: [...t.shape],
      data_offsets: [pos, pos + len],
    }]);
    pos += len;
  }
  if (metadata !== undefined) {
    fields.push([METADATA_KEY, Object.fromEntries(Object.entries(metadata))]);
  }
  const header = Object.fromEntries(fields);

  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + n + pos);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + n);
  let at = 8 + n;
  for (const t of order) {
    out.set(
      new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      at,
    );
    at += t.data.byteLength;
  }
  return out;
}
