/** Copies the var_tiny_a parity fixture into tests/fixtures/, dropping tensors inference does not use. */

import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  parseSafetensors,
  type SafetensorsFile,
  type TensorToWrite,
  writeSafetensors,
} from "../runtime/safetensors.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DEFAULT_SOURCE = resolve(ROOT, "../shared/fixtures/var_tiny_a");
const DEST = join(ROOT, "tests/fixtures/var_tiny_a");

/** Files copied byte for byte. */
const VERBATIM = ["config.json", "reference.json", "README.md"];

/** Safetensors files rewritten, with the predicate selecting tensors to drop. */
const REWRITE: Record<string, (name: string) => boolean> = {
  "reference.safetensors": () => false,
  "var.safetensors": (name) => name === "attn_bias_for_masking",
  "vae.safetensors": (name) => name.startsWith("encoder.") || name.startsWith("quant_conv."),
};

/** A typed array over the tensor's bytes (copied first when unaligned), for the writer. */
function tensorData(st: SafetensorsFile, name: string): TensorToWrite {
  const e = st.entries.get(name)!;
  if (e.dtype !== "F32" && e.dtype !== "I64" && e.dtype !== "I32") {
    throw new Error(
      `${st.file}: tensor "${name}": expected dtype F32, I64 or I32, found ${e.dtype}`,
    );
  }
  const raw = st.bytes.slice(e.offset, e.offset + e.byteLength);
  const data = e.dtype === "F32"
    ? new Float32Array(raw.buffer)
    : e.dtype === "I64"
    ? new BigInt64Array(raw.buffer)
    : new Int32Array(raw.buffer);
  return { name, dtype: e.dtype, shape: e.shape, data };
}

/** Re-parse check: every kept tensor has the same dtype, shape and bytes as in the source. */
function verify(src: SafetensorsFile, out: SafetensorsFile, kept: number) {
  if (out.entries.size !== kept) {
    throw new Error(
      `${out.file}: expected ${kept} tensors, found ${out.entries.size}`,
    );
  }
  for (const e of out.entries.values()) {
    const s = src.entries.get(e.name)!;
    const a = src.bytes.subarray(s.offset, s.offset + s.byteLength);
    const b = out.bytes.subarray(e.offset, e.offset + e.byteLength);
    if (
      s.dtype !== e.dtype || s.shape.join() !== e.shape.join() ||
      a.length !== b.length || a.some((x, i) => x !== b[i])
    ) {
      throw new Error(`${out.file}: tensor "${e.name}" differs from source`);
    }
  }
}

async function main(): Promise<void> {
  const source = Deno.args[0] !== undefined ? resolve(Deno.args[0]) : DEFAULT_SOURCE;
  await Deno.mkdir(DEST, { recursive: true });
  const report = (name: string, size: number, note: string) =>
    console.log(`${name.padEnd(24)} ${String(size).padStart(10)} B  ${note}`);

  for (const name of VERBATIM) {
    const bytes = await Deno.readFile(join(source, name));
    await Deno.writeFile(join(DEST, name), bytes);
    report(name, bytes.length, "copied");
  }

  for (const [name, drop] of Object.entries(REWRITE)) {
    const path = join(source, name);
    const st = parseSafetensors(await Deno.readFile(path), path);
    const kept: TensorToWrite[] = [];
    const dropped: string[] = [];
    for (const t of st.entries.keys()) {
      if (drop(t)) dropped.push(t);
      else kept.push(tensorData(st, t));
    }
    const meta = Object.keys(st.metadata).length > 0 ? { ...st.metadata } : undefined;
    const out = writeSafetensors(kept, meta);
    verify(st, parseSafetensors(out, join(DEST, name)), kept.length);
    await Deno.writeFile(join(DEST, name), out);
    report(
      name,
      out.length,
      `${kept.length} tensors kept, ${dropped.length} dropped (was ${st.bytes.length} B)`,
    );
  }
}

if (import.meta.main) await main();
