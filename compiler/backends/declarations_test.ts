/**
 * @file The `.d.ts` of compiled model modules: `declarations.ts` is what `deno task dts` writes from
 * the current types (else it is stale), and each `.d.ts` it gives type-checks on its own.
 */
import assert from "node:assert/strict";
import { assertDenoChecks } from "../../tests/_helpers.ts";
import { join } from "node:path";
import { declarations } from "../../tools/dts.ts";
import { dts } from "./declarations.ts";

Deno.test("declarations.ts is up to date with module_exports.ts and the types it names (deno task dts)", async () => {
  const written = await Deno.readTextFile(new URL("./declarations.ts", import.meta.url));
  assert.equal(await declarations(), written, "compiler/backends/declarations.ts is stale: run `deno task dts`");
});

Deno.test("every .d.ts of declarations.ts type-checks alone", async () => {
  const files = ["hostModule", "deviceModule", "hostBundle", "deviceBundle"] as const;
  const dir = await Deno.makeTempDir({ prefix: "varc_dts_" });
  try {
    for (const f of files) await Deno.writeTextFile(join(dir, `${f}.d.ts`), dts(f));
    await assertDenoChecks(["--no-config", ...files.map((f) => `${f}.d.ts`)], dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
