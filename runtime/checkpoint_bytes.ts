/**
 * @file Checkpoint bytes for the loader of compiled modules (`load` in a bundle or an esbuild app):
 * bytes as given; a URL fetched with streamed progress (page-relative in a browser; http(s):, file:
 * or data: in Deno); in Deno, a string without a URL scheme is a file path, relative to the working
 * directory, read with progress. Platform-neutral: Deno's file API is used only where it exists.
 * @module
 */

/** Checkpoint bytes, a URL, or (in Deno) a file path. */
export type WeightSource = Uint8Array | ArrayBuffer | string | URL;

/** Bytes read so far, and the total when known. */
export type ByteProgress = (loaded: number, total?: number) => void;

/** The part of Deno's file API the loader uses (absent in browsers and workers). */
interface DenoFiles {
  open(path: string): Promise<{
    stat(): Promise<{ size: number; isFile: boolean }>;
    read(into: Uint8Array): Promise<number | null>;
    close(): void;
  }>;
  cwd(): string;
}

const CHUNK = 1 << 22;

function denoFiles(): DenoFiles | undefined {
  const deno = (globalThis as { Deno?: Partial<DenoFiles> }).Deno;
  return typeof deno?.open === "function" && typeof deno.cwd === "function" ? deno as DenoFiles : undefined;
}

/** Whether `s` starts with a URL scheme (two characters or more, so `C:\…` stays a Windows path). */
export function hasUrlScheme(s: string): boolean {
  return /^[a-z][a-z0-9+.-]+:/i.test(s);
}

/** The bytes of a weight source, reporting progress while a URL downloads or a file is read. */
export async function checkpointBytes(source: WeightSource, onProgress?: ByteProgress): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  const files = denoFiles();
  if (files && typeof source === "string" && !hasUrlScheme(source)) return await readFile(files, source, onProgress);
  return await fetchBytes(source, onProgress);
}

/** Reads a file into one buffer sized from its status, in chunks, reporting progress after each. */
async function readFile(files: DenoFiles, path: string, onProgress?: ByteProgress): Promise<Uint8Array> {
  let file;
  try {
    file = await files.open(path);
  } catch (e) {
    const why = e instanceof Error && e.name === "NotFound" ? "no such file" : String((e as Error).message ?? e);
    throw new Error(`${path}: ${why} (a path is read relative to the working directory, ${files.cwd()})`);
  }
  try {
    const { size, isFile } = await file.stat();
    if (!isFile) throw new Error(`${path}: not a file`);
    const bytes = new Uint8Array(size);
    let loaded = 0;
    while (loaded < size) {
      const n = await file.read(bytes.subarray(loaded, Math.min(size, loaded + CHUNK)));
      if (n === null) throw new Error(`${path}: the file ended after ${loaded} of ${size} bytes while being read`);
      loaded += n;
      onProgress?.(loaded, size);
    }
    if (size === 0) onProgress?.(0, 0);
    return bytes;
  } finally {
    file.close();
  }
}

/** Fetches a URL into one buffer, reporting progress as the body streams in (total: the Content-Length). */
export async function fetchBytes(url: string | URL, onProgress?: ByteProgress): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status} ${response.statusText}`);
  const length = Number(response.headers.get("content-length"));
  const total = Number.isSafeInteger(length) && length > 0 ? length : undefined;
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    onProgress?.(bytes.length, total);
    return bytes;
  }
  const reader = response.body.getReader();
  let buffer = new Uint8Array(total ?? 1 << 20), loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > buffer.length) {
      const grown = new Uint8Array(Math.max(2 * buffer.length, loaded + value.length));
      grown.set(buffer.subarray(0, loaded));
      buffer = grown;
    }
    buffer.set(value, loaded);
    loaded += value.length;
    onProgress?.(loaded, total);
  }
  return loaded === buffer.length ? buffer : buffer.slice(0, loaded);
}
