/**
 * Lists the tensors of a safetensors file as varc's reader sees them, to verify a conversion made
 * by tools/convert_pth.py:
 *
 *   deno run -A tools/convert_pth_check.ts var_d16.safetensors [more.safetensors ...]
 *
 * Prints the metadata, then one line per tensor (name, dtype, shape) in data order, then a summary
 * that also says whether every tensor starts at a file offset that is a multiple of its element size. Exits 1 if a file
 * cannot be read or parsed.
 */

import { readSafetensors, SafetensorsError, type TensorEntry } from "../runtime/safetensors.ts";

function numel(e: TensorEntry): number {
  return e.shape.reduce((p, d) => p * d, 1);
}

async function check(path: string): Promise<void> {
  const st = await readSafetensors(path);
  console.log(`${path}:`);
  for (const [k, v] of Object.entries(st.metadata)) console.log(`  __metadata__ ${k} = ${JSON.stringify(v)}`);
  const width = Math.max(0, ...[...st.entries.keys()].map((n) => n.length));
  const misaligned: string[] = [];
  let dataBytes = 0;
  for (const e of st.entries.values()) {
    console.log(`  ${e.name.padEnd(width)}  ${e.dtype.padEnd(4)}  [${e.shape.join(", ")}]`);
    dataBytes += e.byteLength;
    const n = numel(e);
    const elementSize = n > 0 ? e.byteLength / n : 1;
    // e.offset counts from the start of the file.
    if (e.offset % elementSize !== 0) misaligned.push(e.name);
  }
  console.log(
    `  ${st.entries.size} tensors, ${dataBytes} data bytes, ${st.bytes.length} bytes in all; ` +
      (misaligned.length === 0
        ? "every tensor aligned to its element size"
        : `not aligned to element size: ${misaligned.join(", ")}`),
  );
}

if (import.meta.main) {
  if (Deno.args.length === 0) {
    console.error("usage: deno run -A tools/convert_pth_check.ts FILE.safetensors [...]");
    Deno.exit(2);
  }
  let failed = false;
  for (const path of Deno.args) {
    try {
      await check(path);
    } catch (err) {
      if (!(err instanceof SafetensorsError)) throw err;
      console.error(err.message);
      failed = true;
    }
  }
  if (failed) Deno.exit(1);
}
