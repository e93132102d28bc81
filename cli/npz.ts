/**
 * @file A streamed `.npz` with one uint8 array: a ZIP64 archive holding one stored (uncompressed)
 * `<name>.npy`, the layout numpy's `np.load` and the FID/IS evaluation suites read (`arr_0`,
 * uint8 [N, H, W, 3]).
 *
 * The array's size is known before the first byte, so sizes go into the headers up front; the
 * CRC-32 is computed while the data streams through and patched into the local header at the end
 * (no data descriptor). Sizes are always written as ZIP64 fields (local and central headers), so a
 * 9.8 GB set (50,000 × 256 × 256 × 3) takes the same path as a test's few kilobytes; the end records
 * hold ZIP64 values and the classic record keeps 0xFFFF… markers only where a value does not fit.
 */
import { crc32 } from "node:zlib";
import { basename, dirname, join } from "node:path";
import { OutputError } from "./output.ts";

/**
 * The `.npy` (format 1.0) header of a C-order uint8 array of `shape`: magic, version, length, then a
 * Python dict literal padded with spaces to a multiple of 64 bytes and ended by a line break.
 */
export function npyHeader(shape: readonly number[]): Uint8Array {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  const dict = `{'descr': '|u1', 'fortran_order': False, 'shape': (${dims}), }`;
  const unpadded = 10 + dict.length + 1;
  const text = dict + " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  const out = new Uint8Array(10 + text.length);
  out.set([0x93, ...new TextEncoder().encode("NUMPY"), 1, 0]);
  new DataView(out.buffer).setUint16(8, text.length, true);
  out.set(new TextEncoder().encode(text), 10);
  return out;
}

/** DOS date 1980-01-01, time 00:00: a fixed stamp, so that the same arrays give the same bytes. */
const DOS_DATE = (0 << 9) | (1 << 5) | 1, DOS_TIME = 0;
const ZIP64_VERSION = 45; // "version needed" for ZIP64 fields
const U32_MAX = 0xffffffff;

/** The ZIP64 extended-information extra field holding both sizes (uncompressed, then compressed). */
function zip64Sizes(size: number): Uint8Array {
  const b = new Uint8Array(20), v = new DataView(b.buffer);
  v.setUint16(0, 0x0001, true), v.setUint16(2, 16, true);
  v.setBigUint64(4, BigInt(size), true), v.setBigUint64(12, BigInt(size), true);
  return b;
}

/** Local file header of a stored entry of `size` bytes, CRC left 0 (patched at offset 14). */
export function localHeader(name: string, size: number): Uint8Array {
  const n = new TextEncoder().encode(name), extra = zip64Sizes(size);
  const b = new Uint8Array(30 + n.length + extra.length), v = new DataView(b.buffer);
  v.setUint32(0, 0x04034b50, true);
  v.setUint16(4, ZIP64_VERSION, true);
  v.setUint16(6, 0, true); // flags: sizes and CRC in this header, no data descriptor
  v.setUint16(8, 0, true); // stored
  v.setUint16(10, DOS_TIME, true), v.setUint16(12, DOS_DATE, true);
  v.setUint32(14, 0, true); // CRC-32, patched once the data has streamed
  v.setUint32(18, U32_MAX, true), v.setUint32(22, U32_MAX, true); // sizes: in the ZIP64 extra field
  v.setUint16(26, n.length, true), v.setUint16(28, extra.length, true);
  b.set(n, 30), b.set(extra, 30 + n.length);
  return b;
}

/**
 * Everything after the data of a one-entry archive whose local header starts at 0: the central
 * directory header, the ZIP64 end record, its locator and the classic end record. `at` is where the
 * central directory starts (the local header, the entry's name and extra, and the data before it).
 */
export function zipTrailer(name: string, size: number, crc: number, at: number): Uint8Array {
  const n = new TextEncoder().encode(name), extra = zip64Sizes(size);
  const cdSize = 46 + n.length + extra.length;
  const b = new Uint8Array(cdSize + 56 + 20 + 22), v = new DataView(b.buffer);
  v.setUint32(0, 0x02014b50, true);
  v.setUint16(4, ZIP64_VERSION, true), v.setUint16(6, ZIP64_VERSION, true);
  v.setUint16(8, 0, true), v.setUint16(10, 0, true);
  v.setUint16(12, DOS_TIME, true), v.setUint16(14, DOS_DATE, true);
  v.setUint32(16, crc, true);
  v.setUint32(20, U32_MAX, true), v.setUint32(24, U32_MAX, true);
  v.setUint16(28, n.length, true), v.setUint16(30, extra.length, true), v.setUint16(32, 0, true);
  v.setUint16(34, 0, true), v.setUint16(36, 0, true), v.setUint32(38, 0, true);
  v.setUint32(42, 0, true); // the local header's offset
  b.set(n, 46), b.set(extra, 46 + n.length);
  let o = cdSize; // ZIP64 end of central directory record
  v.setUint32(o, 0x06064b50, true);
  v.setBigUint64(o + 4, 44n, true); // size of the rest of this record
  v.setUint16(o + 12, ZIP64_VERSION, true), v.setUint16(o + 14, ZIP64_VERSION, true);
  v.setUint32(o + 16, 0, true), v.setUint32(o + 20, 0, true);
  v.setBigUint64(o + 24, 1n, true), v.setBigUint64(o + 32, 1n, true);
  v.setBigUint64(o + 40, BigInt(cdSize), true), v.setBigUint64(o + 48, BigInt(at), true);
  o += 56; // ZIP64 end of central directory locator
  v.setUint32(o, 0x07064b50, true);
  v.setUint32(o + 4, 0, true);
  v.setBigUint64(o + 8, BigInt(at + cdSize), true);
  v.setUint32(o + 16, 1, true);
  o += 20; // end of central directory record
  v.setUint32(o, 0x06054b50, true);
  v.setUint16(o + 4, 0, true), v.setUint16(o + 6, 0, true);
  v.setUint16(o + 8, 1, true), v.setUint16(o + 10, 1, true);
  v.setUint32(o + 12, cdSize, true);
  v.setUint32(o + 16, at >= U32_MAX ? U32_MAX : at, true);
  v.setUint16(o + 20, 0, true);
  return b;
}

/** Bytes gathered before each write to the file. */
const WRITE_BYTES = 4 << 20;

/**
 * Writes `file` as an .npz holding `<name>.npy`, uint8 of `shape`, from `chunks` (C order, any
 * split, exactly the array's bytes in all). Atomic: a temporary file in the same folder, renamed
 * when complete; on any error (including one thrown by `chunks`) it is removed. Returns the file's size.
 */
export async function writeNpz(
  file: string,
  name: string,
  shape: readonly number[],
  chunks: AsyncIterable<Uint8Array>,
): Promise<number> {
  const entry = `${name}.npy`, header = npyHeader(shape);
  const dataBytes = shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(dataBytes)) throw new RangeError(`writeNpz: shape [${shape}] is too large`);
  const size = header.length + dataBytes, local = localHeader(entry, size);
  const trailerBytes = zipTrailer(entry, size, 0, 0).length;
  const tmp = join(dirname(file), `.${basename(file)}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  /** A file-system step; its failure becomes one line naming the output. */
  const fs = async <T>(op: () => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (e) {
      const why = (e as Error).message.replace(/:? *[a-z]+ '[^']*'$/, "").replace(/ \(os error \d+\)$/, "");
      throw new OutputError(`writing ${file} failed: ${why}`);
    }
  };
  let f: Deno.FsFile | undefined;
  try {
    await fs(() => Deno.mkdir(dirname(file), { recursive: true }));
    const out = f = await fs(() => Deno.open(tmp, { write: true, createNew: true }));
    let crc = 0, written = 0, held = 0;
    const pending: Uint8Array[] = [];
    const flush = async () => {
      const all = new Uint8Array(held);
      let o = 0;
      for (const p of pending) all.set(p, o), o += p.length;
      for (let n = 0; n < all.length;) n += await fs(() => out.write(all.subarray(n)));
      pending.length = 0, held = 0;
    };
    const put = async (bytes: Uint8Array, counted: boolean) => {
      if (counted) {
        crc = crc32(bytes, crc), written += bytes.length;
        if (written > size) throw new RangeError(`writeNpz: more than the ${dataBytes} bytes of [${shape}]`);
      }
      pending.push(bytes.slice()), held += bytes.length;
      if (held >= WRITE_BYTES) await flush();
    };
    await put(local, false);
    await put(header, true);
    for await (const c of chunks) await put(c, true);
    if (written !== size) {
      throw new RangeError(`writeNpz: got ${written - header.length} of the ${dataBytes} bytes of [${shape}]`);
    }
    await put(zipTrailer(entry, size, crc >>> 0, local.length + size), false);
    await flush();
    const c = new Uint8Array(4);
    new DataView(c.buffer).setUint32(0, crc >>> 0, true);
    await fs(() => out.seek(14, Deno.SeekMode.Start));
    for (let n = 0; n < 4;) n += await fs(() => out.write(c.subarray(n)));
    await fs(() => out.syncData());
    out.close(), f = undefined;
    await fs(() => Deno.rename(tmp, file));
    return local.length + size + trailerBytes;
  } catch (e) {
    try {
      f?.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
