/**
 * @file `examples/cluster/`: the Kubernetes manifest parses (npm yaml) and gives the command what it
 * needs, the Slurm script agrees with it, both scripts are valid bash, and three processes started as
 * the engines start them (JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID) make the files of one process.
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { parseAllDocuments } from "yaml";
import { GLYPHS, indexLines, pngs, runCli, sampleArgs } from "./_samples.ts";

const DIR = "examples/cluster";

/** The variables sample.sh requires (`: "${NAME:?…}"`) and those it reads with a default. */
async function scriptVariables(): Promise<{ required: string[]; all: string[] }> {
  const text = await Deno.readTextFile(`${DIR}/sample.sh`);
  const required = [...text.matchAll(/^: "\$\{(VARC_[A-Z_]+):\?/gm)].map((m) => m[1]!);
  const all = [...new Set([...text.matchAll(/\$\{?(VARC_[A-Z_]+)/g)].map((m) => m[1]!))];
  return { required, all };
}

Deno.test("the Indexed Job: one pod per shard, the shard count and output folder the command needs", async () => {
  const docs = parseAllDocuments(await Deno.readTextFile(`${DIR}/indexed-job.yaml`));
  for (const d of docs) assert.deepEqual(d.errors, [], "YAML errors");
  const [pvc, job] = docs.map((d) => d.toJS());
  assert.equal(pvc.kind, "PersistentVolumeClaim");
  assert.deepEqual(pvc.spec.accessModes, ["ReadWriteMany"], "every pod writes into the same volume");
  assert.equal(job.apiVersion, "batch/v1");
  assert.equal(job.kind, "Job");
  assert.equal(job.spec.completionMode, "Indexed", "JOB_COMPLETION_INDEX is set only in Indexed Jobs");
  const pod = job.spec.template.spec;
  assert.equal(pod.restartPolicy, "Never", "backoffLimitPerIndex needs restartPolicy Never");
  assert.equal(pod.containers.length, 1);
  const c = pod.containers[0];
  assert.deepEqual(c.command, ["bash", `${DIR}/sample.sh`]);
  const env = Object.fromEntries(c.env.map((e: { name: string; value: string }) => [e.name, e.value]));
  const { required, all } = await scriptVariables();
  for (const name of required) assert.ok(env[name] !== undefined, `the manifest sets ${name}`);
  for (const name of Object.keys(env)) assert.ok(all.includes(name), `sample.sh reads ${name}`);
  assert.equal(Number(env.VARC_SHARDS), job.spec.completions, "one shard per completion index");
  assert.ok(job.spec.parallelism <= job.spec.completions);
  const mount = c.volumeMounts.find((m: { mountPath: string }) => env.VARC_OUT.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `VARC_OUT ${env.VARC_OUT} is on a mounted volume`);
  for (const f of ["VARC_VAR", "VARC_VAE"]) assert.ok(env[f].startsWith(`${mount.mountPath}/`), `${f} on the volume`);
  const volume = pod.volumes.find((v: { name: string }) => v.name === mount.name);
  assert.equal(volume.persistentVolumeClaim.claimName, pvc.metadata.name);
  await Deno.stat(env.VARC_SPEC); // the spec is in the image (the repository)
  const docker = await Deno.readTextFile(`${DIR}/Dockerfile`);
  assert.match(docker, /^FROM node:/m);
  assert.match(docker, /npm install --global deno@2\.9\.6/);
  assert.match(docker, /^COPY \. \.$/m);
});

Deno.test("the Slurm array: one task per shard, the same command and variables as the Job", async () => {
  const text = await Deno.readTextFile(`${DIR}/slurm-array.sh`);
  const array = /^#SBATCH --array=0-(\d+)$/m.exec(text);
  assert.ok(array, "an array 0-N");
  const exports = Object.fromEntries(
    [...text.matchAll(/(VARC_[A-Z_]+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]),
  );
  assert.equal(Number(exports.VARC_SHARDS), Number(array[1]) + 1, "VARC_SHARDS is the array's size");
  const { required } = await scriptVariables();
  for (const name of required) assert.ok(exports[name] !== undefined, `the script exports ${name}`);
  assert.match(text, /^srun bash examples\/cluster\/sample\.sh$/m);
  const job = parseAllDocuments(await Deno.readTextFile(`${DIR}/indexed-job.yaml`))[1]!.toJS();
  const env = Object.fromEntries(
    job.spec.template.spec.containers[0].env.map((e: { name: string; value: string }) => [e.name, e.value]),
  );
  for (const k of ["VARC_SPEC", "VARC_PER_CLASS", "VARC_SEED", "VARC_CFG", "VARC_TOP_K", "VARC_TOP_P", "VARC_SHARDS"]) {
    assert.equal(exports[k], env[k], `${k}: the same run on both engines`);
  }
  for (const script of ["sample.sh", "slurm-array.sh"]) {
    const o = await new Deno.Command("bash", { args: ["-n", `${DIR}/${script}`], stderr: "piped" }).output();
    assert.ok(o.success, `${script}: ${new TextDecoder().decode(o.stderr)}`);
  }
});

Deno.test("three shards started as Kubernetes and Slurm start them give the files of one process", async () => {
  const one = await Deno.makeTempDir({ prefix: "varc_cluster_one_" });
  const shared = await Deno.makeTempDir({ prefix: "varc_cluster_shared_" });
  const env = {
    VARC_SPEC: GLYPHS.spec,
    VARC_VAR: GLYPHS.var,
    VARC_VAE: GLYPHS.vae,
    VARC_OUT: shared,
    VARC_CLASSES: "3,7,10-12",
    VARC_PER_CLASS: "2",
    VARC_SEED: "11",
    VARC_CFG: "2",
    VARC_TOP_K: "20",
    VARC_TOP_P: "0.6",
    VARC_SHARDS: "3",
    PATH: `${dirname(Deno.execPath())}:${Deno.env.get("PATH")}`, // the script runs \`deno\`: this one
  };
  // Shard 0 as a pod of an Indexed Job, shards 1 and 2 as tasks of a Slurm array 0-2: all at once.
  const engines: Record<string, string>[] = [
    { JOB_COMPLETION_INDEX: "0" },
    ...["1", "2"].map((id) => ({
      SLURM_ARRAY_TASK_ID: id,
      SLURM_ARRAY_TASK_MIN: "0",
      SLURM_ARRAY_TASK_MAX: "2",
      SLURM_ARRAY_TASK_COUNT: "3",
    })),
  ];
  const children = engines.map((e) =>
    new Deno.Command("bash", { args: [`${DIR}/sample.sh`], env: { ...env, ...e }, stdout: "piped", stderr: "piped" })
      .spawn()
  );
  const r = await runCli(...sampleArgs(one)); // meanwhile, the whole run in this process
  assert.equal(r.code, 0, r.err);
  for (const [k, child] of children.entries()) {
    const o = await child.output();
    const err = new TextDecoder().decode(o.stderr);
    assert.equal(o.code, 0, err);
    assert.match(
      err,
      new RegExp(`shard ${k}/3 \\((JOB_COMPLETION_INDEX|SLURM_ARRAY_TASK_ID)=${k} .*: ${k ? 3 : 4} of 10`),
    );
  }
  const names = [...Deno.readDirSync(shared)].map((e) => e.name).filter((n) => n.endsWith(".jsonl")).sort();
  assert.deepEqual(names, ["index-0-of-3.jsonl", "index-1-of-3.jsonl", "index-2-of-3.jsonl"]);
  assert.deepEqual(await pngs(shared), await pngs(one));
  assert.deepEqual(await indexLines(shared), await indexLines(one));
  const packed = [];
  for (const dir of [one, shared]) {
    const p = await runCli("pack", dir, "--out", `${dir}.npz`);
    assert.equal(p.code, 0, p.err);
    packed.push(await Deno.readFile(`${dir}.npz`));
    await Deno.remove(`${dir}.npz`);
  }
  assert.deepEqual(packed[1], packed[0], "the same .npz from three shards as from one process");
  for (const d of [one, shared]) await Deno.remove(d, { recursive: true });
});
