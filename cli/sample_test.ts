/** @file The batch `varc sample` plans from the compiled memory plan and the memory available (`planBatch`). */
import assert from "node:assert/strict";
import { planBatch } from "./sample.ts";

Deno.test("the memory plan's batch: at most 8, at most the shard's images, fewer when memory is short", () => {
  const meta = {
    memory: { step_0: { fixedBytes: 1000, perRowBytes: 100 }, decode: { fixedBytes: 0, perRowBytes: 500 } },
  };
  // Peak for B images: max(1000 + 100·2B, 500·B).
  assert.equal(planBatch(meta, 100, 1e9).batch, 8);
  assert.equal(planBatch(meta, 3, 1e9).batch, 3);
  assert.equal(planBatch(meta, 100, 2600).batch, 5); // 500·5 = 2500 ≤ 2600 < 3000
  assert.throws(() => planBatch(meta, 100, 1100), /--batch: 1 images need about/);
});
