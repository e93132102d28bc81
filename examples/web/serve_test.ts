/** @file The page server serves files under its root only: no `..`, no symlinks that lead out. */
import assert from "node:assert/strict";
import { staticHandler } from "./serve.ts";

Deno.test("the page server refuses paths and symlinks that leave its root", async () => {
  const root = await Deno.makeTempDir({ prefix: "varc_serve_" });
  const outside = await Deno.makeTempDir({ prefix: "varc_outside_" });
  await Deno.writeTextFile(`${root}/index.html`, "<p>page</p>");
  await Deno.writeTextFile(`${outside}/secret.txt`, "secret");
  await Deno.symlink(`${outside}/secret.txt`, `${root}/leak.txt`);
  await Deno.symlink(outside, `${root}/dir`);
  await Deno.writeTextFile(`${root}/inside.txt`, "inside");
  await Deno.symlink(`${root}/inside.txt`, `${root}/alias.txt`);
  const serve = staticHandler(root);
  const get = async (path: string) => {
    const r = await serve(new Request(`http://localhost${path}`));
    return { status: r.status, text: await r.text() };
  };
  assert.deepEqual(await get("/"), { status: 200, text: "<p>page</p>" });
  assert.deepEqual(await get("/alias.txt"), { status: 200, text: "inside" }, "a link inside the root is fine");
  for (const path of ["/leak.txt", "/dir/secret.txt", "/../" + outside.split("/").pop() + "/secret.txt"]) {
    assert.equal((await get(path)).status, 404, path);
  }
  await Deno.remove(root, { recursive: true });
  await Deno.remove(outside, { recursive: true });
});
