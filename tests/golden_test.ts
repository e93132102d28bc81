/**
 * @file Golden IR (the printed module after each pass of a tiny spec) and the generated source of each
 * target, as a reader sees it in `model.src.ts`. Set VARC_UPDATE_GOLDEN=1 to
 * rewrite the files, then read the diff before committing. The generated source of both targets
 * type-checks against the runtime it imports, with a call of every kernel of the contract (every DSL op
 * through `tests/fuzz/ops.var.ts`, the low-rank kernels through `paper_small`).
 */
import assert from "node:assert/strict";
import { assertDenoChecks } from "./_helpers.ts";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { RUNTIME_MODULES } from "../compiler/backends/bundle.ts";
import { compile, lower } from "../compiler/mod.ts";
import { TARGET_NAMES } from "../compiler/targets.ts";
import { KERNEL_NAMES } from "../runtime/kernels.ts";
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

for (const target of TARGET_NAMES) {
  Deno.test(`golden generated source of tiny_golden (${target} target)`, async () => {
    const { emitted } = await compile("tests/specs/tiny_golden.var.ts", { target });
    await golden(`tiny_golden.${target}.src.golden`, emitted.source);
  });
}

Deno.test("generated source type-checks against the runtime, a call of every kernel included", async () => {
  // ops.var.ts uses every tensor op of the DSL; paper_small lowers some blocks to low-rank (state and read in
  // generation steps); --check-numerics adds checkFinite
  const specs = ["tests/fuzz/ops.var.ts", "tests/specs/paper_small.var.ts"];
  const dir = await Deno.makeTempDir({ prefix: "varc_src_" });
  try {
    const files: string[] = [], sources: string[] = [];
    for (const [i, spec] of specs.entries()) {
      for (const target of TARGET_NAMES) {
        const { emitted } = await compile(spec, { target, checkNumerics: true });
        files.push(`${target}_${i}.ts`), sources.push(emitted.source);
        await Deno.writeTextFile(join(dir, files.at(-1)!), emitted.source);
      }
    }
    for (const kernel of KERNEL_NAMES) {
      assert.ok(sources.some((s) => s.includes(`.${kernel}(`)), `no spec of this test calls ${kernel}`);
    }
    const imports = Object.fromEntries(Object.entries(RUNTIME_MODULES).map(([k, f]) => [k, pathToFileURL(f).href]));
    const config = { imports, compilerOptions: { strict: true }, unstable: ["webgpu"] };
    await Deno.writeTextFile(join(dir, "deno.json"), JSON.stringify(config));
    await assertDenoChecks(["--config", join(dir, "deno.json"), ...files], dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
