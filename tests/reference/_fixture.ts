/**
 * @file The parity fixture for the float64 references, read with a minimal safetensors reader of
 * their own (F32 and I64 only) so that the oracles share no code with the project's reader.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The in-repo copy of the official fixture var_tiny_a. */
export function fixtureDir(): string {
  return fileURLToPath(new URL("../fixtures/var_tiny_a/", import.meta.url));
}

/** name -> Float32Array | BigInt64Array (copies). */
export function readTensors(path: string): Map<string, Float32Array | BigInt64Array> {
  const bytes = readFileSync(path);
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const n = Number(new DataView(buf).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
  const out = new Map<string, Float32Array | BigInt64Array>();
  for (const [name, info] of Object.entries(header) as [string, { dtype: string; data_offsets: number[] }][]) {
    if (name === "__metadata__") continue;
    const [a, z] = info.data_offsets;
    const raw = buf.slice(8 + n + a!, 8 + n + z!);
    if (info.dtype === "F32") out.set(name, new Float32Array(raw));
    else if (info.dtype === "I64") out.set(name, new BigInt64Array(raw));
    else throw new Error(`${name}: unsupported dtype ${info.dtype}`);
  }
  return out;
}

/** Accessor over a tensor map that throws on missing or non-F32 names. */
export function f32(map: Map<string, Float32Array | BigInt64Array>): (name: string) => Float32Array {
  return (name) => {
    const t = map.get(name);
    if (!(t instanceof Float32Array)) throw new Error(`missing F32 tensor ${name}`);
    return t;
  };
}

/** max |a - b| over equal-length arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
