/**
 * @file The test modules that use WebGPU in-process (deno.json's `test.exclude`), each run by
 * `tests/_main_thread.ts` in a child process, so that the process which loads the GL driver calls it from its
 * main thread.
 *
 * Why: `deno test` runs every module on a pooled thread. Where Deno's WebGPU is wgpu's GL backend through
 * glvnd's libEGL (Mesa llvmpipe here), each thread that calls EGL holds per-thread state that libEGL frees when
 * the thread exits. At the end of a run the runtime lets its pooled threads exit while the process is already
 * exiting, and libEGL's exit-time destructor frees the list of those states without taking the lock that the
 * exiting threads take: one run in about ten aborted with "double free or corruption" or a segfault after every
 * test had passed. A process that calls EGL from its main thread only (as `varc` does) frees that state once.
 */
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);
const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", root))) as { test?: { exclude?: string[] } };
const modules = config.test?.exclude ?? [];

Deno.test("deno.json excludes from `deno test` only test modules that exist, and names at least one", () => {
  assert.ok(modules.length > 0, "deno.json has no test.exclude: the WebGPU modules would run on pooled threads");
  for (const m of modules) {
    assert.match(m, /_test\.ts$/, `test.exclude lists ${m}, which is not a test module`);
    assert.ok(Deno.statSync(new URL(m, root)).isFile, `test.exclude lists ${m}, which does not exist`);
  }
});

Deno.test("the main-thread runner runs steps, skips ignored tests and exits 1 naming a failed test", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const module = `${dir}/x_test.ts`;
    Deno.writeTextFileSync(
      module,
      `Deno.test("passes", async (t) => { await t.step("step", () => {}); });
Deno.test({ name: "ignored", ignore: true, fn: () => { throw new Error("ran"); } });
Deno.test("fails", () => { throw new Error("expected failure"); });`,
    );
    const { code, stdout } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tests/_main_thread.ts", module],
      cwd: root,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const out = new TextDecoder().decode(stdout);
    assert.equal(code, 1, out);
    assert.match(out, /^ {2}step \.\.\. ok/m);
    assert.match(out, /^passes \.\.\. ok/m);
    assert.match(out, /^ignored \.\.\. ignored$/m);
    assert.match(out, /^fails \.\.\. FAILED[^]*expected failure/m);
    assert.match(out, /FAILED \| 1 passed \| 1 failed \| 1 ignored/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

for (const m of modules) {
  Deno.test(`${m}, on the main thread of a child process`, async () => {
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tests/_main_thread.ts", m],
      cwd: root,
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    assert.equal(code, 0, `${m}: a test failed on the main thread (its output is above)`);
  });
}
