/** @file Shard selection (`resolveShard`): the --shard flag, Kubernetes and Slurm job indices, and their errors. */
import assert from "node:assert/strict";
import { resolveShard, ShardError } from "./samples.ts";

Deno.test("shards: --shard wins over the environment; Kubernetes and Slurm indices; clear errors", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const none = env({});
  assert.deepEqual(resolveShard(undefined, undefined, none), { k: 0, n: 1, source: "one shard" });
  assert.deepEqual(resolveShard("2/5", undefined, env({ JOB_COMPLETION_INDEX: "4" })), {
    k: 2,
    n: 5,
    source: "--shard 2/5",
  });
  assert.equal(resolveShard(undefined, "8", env({ JOB_COMPLETION_INDEX: "7" })).k, 7);
  const slurm = { SLURM_ARRAY_TASK_ID: "5", SLURM_ARRAY_TASK_MIN: "0", SLURM_ARRAY_TASK_MAX: "7" };
  const array = (vars: Record<string, string>) =>
    [resolveShard(undefined, undefined, env(vars))].map((s) => [s.k, s.n]);
  assert.deepEqual(array({ ...slurm, SLURM_ARRAY_TASK_COUNT: "8" }), [[5, 8]]);
  // With --shards, the task id is the shard even in a resubmitted part of the array (--array=5,17).
  const part = {
    SLURM_ARRAY_TASK_ID: "17",
    SLURM_ARRAY_TASK_MIN: "5",
    SLURM_ARRAY_TASK_MAX: "17",
    SLURM_ARRAY_TASK_COUNT: "2",
  };
  assert.deepEqual([resolveShard(undefined, "64", env(part))].map((s) => [s.k, s.n]), [[17, 64]]);
  const bad: [string | undefined, string | undefined, Record<string, string>, RegExp][] = [
    ["3/3", undefined, {}, /shard 3 does not exist: --shard 3\/3 gives 3 shards, numbered 0 to 2/],
    ["1/0", undefined, {}, /--shard's N must be a whole number ≥ 1, got "0"/],
    ["-1/4", undefined, {}, /--shard must be K\/N with whole numbers/],
    ["0x1/4", undefined, {}, /--shard must be K\/N/],
    ["1/4", "4", {}, /--shard 1\/4 already gives the count: drop --shards/],
    [undefined, "4", {}, /--shards needs a shard index/],
    [undefined, undefined, { JOB_COMPLETION_INDEX: "2" }, /JOB_COMPLETION_INDEX=2 gives the shard but not the count/],
    [undefined, "2", { JOB_COMPLETION_INDEX: "2" }, /shard 2 does not exist: JOB_COMPLETION_INDEX=2 with --shards 2/],
    [undefined, "2", { JOB_COMPLETION_INDEX: "one" }, /JOB_COMPLETION_INDEX must be a whole number, got "one"/],
    [undefined, "2", { JOB_COMPLETION_INDEX: "0", SLURM_ARRAY_TASK_ID: "0" }, /both JOB_COMPLETION_INDEX .* are set/],
    [undefined, undefined, { SLURM_ARRAY_TASK_ID: "1" }, /SLURM_ARRAY_TASK_COUNT is not: pass --shards N/],
    [undefined, undefined, part, /the Slurm array runs 5-.* \(2 tasks\): to count shards by its tasks it must be 0-1/],
    [undefined, undefined, { ...slurm, SLURM_ARRAY_TASK_COUNT: "4", SLURM_ARRAY_TASK_STEP: "2" }, /runs 0-7:2 \(4/],
    [undefined, "16", { ...slurm, SLURM_ARRAY_TASK_ID: "16" }, /shard 16 does not exist: SLURM_ARRAY_TASK_ID=16 with/],
  ];
  for (const [flag, shards, vars, pattern] of bad) {
    assert.throws(() => resolveShard(flag, shards, env(vars)), (e: Error) => {
      assert.ok(e instanceof ShardError, `${flag} ${shards} ${JSON.stringify(vars)}: ${e}`);
      assert.match(e.message, pattern);
      return true;
    });
  }
});
