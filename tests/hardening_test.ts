/** @file Numeric guards and resource limits: NaN/Inf located at their node, oversize work refused up front. */
import assert from "node:assert/strict";
import { compile, CompileError } from "../compiler/mod.ts";
import { checkGenerationMemory, generationBytes, ResourceError } from "../runtime/generate.ts";
import { importModel } from "../runtime/mod.ts";

Deno.test("--check-numerics names the first node that produced Inf, with its spec span", async () => {
  const checked = await importModel(
    (await compile("tests/specs/overflow.var.ts", { checkNumerics: true })).emitted.bundle,
  );
  const x = { x: { data: Float32Array.from([0, 0.01, 0.5, 0]), shape: [1, 4] } };
  assert.throws(
    () => checked.entries.forward!(() => new Float32Array(0), x),
    (e: Error) =>
      e.name === "NumericsError" &&
      /forward: %\d+ \(unary\) at tests\/specs\/overflow\.var\.ts:6:\d+ produced Infinity at flat index 2/.test(
        e.message,
      ),
  );
  const plain = await importModel((await compile("tests/specs/overflow.var.ts")).emitted.bundle);
  const y = (await plain.entries.forward!(() => new Float32Array(0), x)).outputs.y!.data;
  assert.equal(y[2], Infinity, "without the flag the overflow passes through unchecked");
});

Deno.test("a tensor larger than the machine's memory is a compile error at its span", async () => {
  await assert.rejects(compile("tests/specs/huge.var.ts"), (e: unknown) => {
    assert.ok(e instanceof CompileError);
    const d = e.diagnostics[0]!;
    assert.equal(d.id, "resource-limit");
    assert.equal(d.span?.line, 4);
    assert.match(d.message, /needs 3725\.3 GiB for one batch row/);
    return true;
  });
});

Deno.test("generate refuses a batch whose planned peak exceeds the available memory, with the numbers", async () => {
  const module = await importModel((await compile("tests/specs/markov.var.ts")).emitted.bundle);
  const one = generationBytes(module.info.meta, 1).bytes, ten = generationBytes(module.info.meta, 10).bytes;
  assert.ok(one > 0 && ten > 5 * one, `planned peaks ${one} and ${ten} bytes`);
  checkGenerationMemory(module.info.meta, 10, ten); // exactly fits
  assert.throws(
    () => checkGenerationMemory(module.info.meta, 10, ten - 1),
    (e: Error) =>
      e instanceof ResourceError &&
      /10 images need about .* GiB at their peak \(.+\), but .* GiB are available; at most about \d+ images/.test(
        e.message,
      ),
  );
});

Deno.test({
  name: "a spec or an imported module that is a device, FIFO or socket is refused before reading",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "varc_special_" });
    const fifo = `${dir}/fifo.var.ts`;
    await new Deno.Command("mkfifo", { args: [fifo] }).output();
    await Deno.symlink("/dev/zero", `${dir}/zero.var.ts`);
    const importer = `${dir}/imports_fifo.var.ts`;
    await Deno.writeTextFile(importer, `import x from "./fifo.var.ts";\nexport default x;\n`);
    for (const spec of [fifo, `${dir}/zero.var.ts`, importer]) {
      await assert.rejects(compile(spec), (e: unknown) => {
        assert.ok(e instanceof CompileError, String(e));
        assert.match(e.message, /not a regular file \(a directory, device, FIFO or socket\)/);
        return true;
      });
    }
    await Deno.remove(dir, { recursive: true });
  },
});
