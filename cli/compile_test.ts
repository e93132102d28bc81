/** @file Helpers of `varc compile`: inline code in report.md (`mdCode`). */
import assert from "node:assert/strict";
import { mdCode } from "./compile.ts";

Deno.test("report.md quotes any spec path as inline code (backticks, line breaks)", () => {
  assert.equal(mdCode("a.var.ts"), "`a.var.ts`");
  assert.equal(mdCode("we`ird.var.ts"), "``we`ird.var.ts``");
  assert.equal(mdCode("`x``"), "``` `x`` ```");
  assert.equal(mdCode("a\nb"), "`a b`");
});
