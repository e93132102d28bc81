/**
 * @file Golden IR (the printed module after each pass of a tiny spec) and the generated source of each
 * target, as a reader sees it in `model.src.ts`. Set VARC_UPDATE_GOLDEN=1 to
 * rewrite the files, then read the diff before committing.
 */
import assert from "node:assert/strict";
import { compile, lower } from "../compiler/mod.ts";
import { printModule } from "../compiler/ir/print.ts";
import { defaultPipeline } from "../compiler/pipeline.ts";

const UPDATE = Deno.env.get("VARC_UPDATE_GOLDEN") === "1";

async function golden(name: string, actual: string): Promise<void> {
  const path = new URL(`./golden/${name}`, import.meta.url);
  if (UPDATE) await Deno.writeTextFile(path, actual);
  assert.equal(actual, await Deno.readTextFile(path), `golden ${name} differs (VARC_UPDATE_GOLDEN=1 rewrites it)`);
}

for (const pass of defaultPipeline) {
  Deno.test(`golden IR of tiny_golden after ${pass.name}`, async () => {
    const printed: string[] = [];
    lower("tests/specs/tiny_golden.var.ts", {}, { printIrAfter: [pass.name], print: (t) => printed.push(t) });
    assert.equal(printed.length, 1);
    await golden(`tiny_golden.${pass.name}.ir`, printed[0]! + "\n");
  });
}

Deno.test("printing is stable: two compiles print the same IR", () => {
  const a = printModule(lower("tests/specs/markov.var.ts"));
  const b = printModule(lower("tests/specs/markov.var.ts"));
  assert.equal(a, b);
  assert.match(a, /exact_attention\{scale=1, mask=scale_window\(2; 1,2,3,4\), beta=100 \(static-exact\)\}/);
  assert.match(a, /unary\{fn="silu"\}/);
});

for (const target of ["js", "webgpu"] as const) {
  Deno.test(`golden generated source of tiny_golden (${target} target)`, async () => {
    const { emitted } = await compile("tests/specs/tiny_golden.var.ts", { target });
    await golden(`tiny_golden.${target}.src.golden`, emitted.source);
  });
}
