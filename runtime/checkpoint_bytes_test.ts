/**
 * @file Tests of `checkpointBytes`: bytes pass through, Deno file paths are read relative to the working
 * directory with progress, strings with a URL scheme are fetched, and a missing file is one line naming it.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { checkpointBytes, fetchBytes, hasUrlScheme } from "./checkpoint_bytes.ts";

/** A temporary file of n pseudo-random bytes; returns its absolute path and contents. */
async function tempFile(n: number): Promise<{ path: string; bytes: Uint8Array }> {
  const dir = await Deno.makeTempDir({ prefix: "varc_bytes_" });
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 2654435761) >>> 24;
  const path = join(dir, "ckpt.safetensors");
  await Deno.writeFile(path, bytes);
  return { path, bytes };
}

Deno.test("hasUrlScheme: URLs have a scheme of two characters or more; paths and drive letters do not", () => {
  for (const url of ["https://x/y", "file:///a", "data:,x", "blob:http://x/1", "http://127.0.0.1:8000/w"]) {
    assert.ok(hasUrlScheme(url), url);
  }
  for (const path of ["weights/var.safetensors", "./var.safetensors", "/abs/var.safetensors", "C:\\w\\var", "v:x"]) {
    assert.ok(!hasUrlScheme(path), path);
  }
});

Deno.test("checkpointBytes: a relative path is read from the working directory, with progress up to the size", async () => {
  const { path, bytes } = await tempFile((1 << 22) + 12345); // more than one read chunk
  const progress: [number, number | undefined][] = [];
  const got = await checkpointBytes(relative(Deno.cwd(), path), (loaded, total) => progress.push([loaded, total]));
  assert.deepEqual(got, bytes);
  assert.ok(progress.length >= 2, `progress reported ${progress.length} times`);
  assert.deepEqual(progress.at(-1), [bytes.length, bytes.length]);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i]![0] > progress[i - 1]![0], "progress increases");
  assert.deepEqual(await checkpointBytes(path), bytes, "absolute path");
  await Deno.remove(join(path, ".."), { recursive: true });
});

Deno.test("checkpointBytes: file: and data: URLs are fetched; bytes and ArrayBuffers pass through", async () => {
  const { path, bytes } = await tempFile(1000);
  assert.deepEqual(await checkpointBytes(pathToFileURL(path)), bytes);
  assert.deepEqual(await checkpointBytes(pathToFileURL(path).href), bytes);
  assert.deepEqual(await checkpointBytes("data:application/octet-stream;base64,AAEC"), new Uint8Array([0, 1, 2]));
  assert.equal(await checkpointBytes(bytes), bytes);
  assert.deepEqual(await checkpointBytes(bytes.buffer as ArrayBuffer), bytes);
  await Deno.remove(join(path, ".."), { recursive: true });
});

Deno.test("checkpointBytes: a missing file or a folder is one line naming the path", async () => {
  await assert.rejects(
    () => checkpointBytes("no/such/var.safetensors"),
    (e: Error) => {
      assert.equal(e.message.split("\n").length, 1);
      assert.match(e.message, /^no\/such\/var\.safetensors: no such file \(a path is read relative to the working/);
      assert.ok(e.message.includes(Deno.cwd()), e.message);
      return true;
    },
  );
  const dir = await Deno.makeTempDir({ prefix: "varc_bytes_" });
  await assert.rejects(() => checkpointBytes(dir), new RegExp(`^Error: ${dir.replaceAll("\\", "\\\\")}: not a file$`));
  await Deno.remove(dir);
});

Deno.test("fetchBytes: HTTP errors name the URL and status; streamed bodies report progress", async () => {
  const body = new Uint8Array(300_000).map((_, i) => i & 255);
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    if (new URL(req.url).pathname === "/w") return new Response(body);
    return new Response("gone", { status: 404, statusText: "Not Found" });
  });
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    const progress: number[] = [];
    assert.deepEqual(await fetchBytes(`${base}/w`, (n) => progress.push(n)), body);
    assert.equal(progress.at(-1), body.length);
    await assert.rejects(() => fetchBytes(`${base}/x`), new RegExp(`^Error: ${base}/x: HTTP 404 Not Found$`));
  } finally {
    await server.shutdown();
  }
});
