/**
 * @file Lowering decisions: golden `explain` output for the official presets (exact, with the
 * reason) and the paper-regime examples (low-rank), and an end-to-end check that a lowered block's
 * output stays within its printed error bound. VARC_UPDATE_GOLDEN=1 rewrites the golden files.
 */
import assert from "node:assert/strict";
import { compile, explainText, lower } from "../compiler/mod.ts";
import { attentionReport } from "../compiler/report.ts";
import { importModel } from "../runtime/mod.ts";
import { bindModel } from "../runtime/mod.ts";
import { randomCheckpoint } from "../runtime/random.ts";
import { maxAbs, maxAbsDiff } from "./_helpers.ts";

const UPDATE = Deno.env.get("VARC_UPDATE_GOLDEN") === "1";

const SPECS = [
  "examples/var_d16.var.ts",
  "examples/var_d20.var.ts",
  "examples/var_d24.var.ts",
  "examples/var_d30.var.ts",
  "examples/var_d36.var.ts",
  "examples/paper_regime/var_1024.var.ts",
  "examples/paper_regime/var_2048.var.ts",
];

for (const spec of SPECS) {
  Deno.test(`explain ${spec} matches its golden output`, async () => {
    const module = lower(spec);
    const text = explainText(module, attentionReport(module)) + "\n";
    const path = new URL(`./golden/explain/${spec.split("/").pop()!.replace(".var.ts", ".txt")}`, import.meta.url);
    if (UPDATE) await Deno.writeTextFile(path, text);
    assert.equal(text, await Deno.readTextFile(path));
    const rows = attentionReport(module).filter((r) => r.block.startsWith("blocks."));
    const paper = spec.includes("paper_regime");
    assert.ok(
      rows.every((r) => r.decision === (paper ? "lowrank" : "exact")),
      `${spec}: ${rows.map((r) => r.reason).join("; ")}`,
    );
  });
}

Deno.test("a low-rank block's output stays within 2ε/(1−ε)·‖V‖∞ of exact attention in the real model", async () => {
  const spec = "tests/specs/paper_small.var.ts";
  const low = await importModel((await compile(spec)).emitted.bundle);
  const exact = await importModel((await compile(spec, { attention: "exact" })).emitted.bundle);
  const report = attentionReport(lower(spec)).find((r) => r.block === "blocks.0.attn")!;
  assert.equal(report.decision, "lowrank");
  const files = { var: randomCheckpoint(low, "var", 8), vae: randomCheckpoint(low, "vae", 9) };
  const meta = low.info.meta as { tokens: number; vocab: number };
  const inputs = {
    labels: { data: Int32Array.from([1, 2]), shape: [2] },
    idx_BL: {
      data: Int32Array.from({ length: 2 * meta.tokens }, (_, i) => (i * 31) % meta.vocab),
      shape: [2, meta.tokens],
    },
  };
  const taps = ["blocks.0.attn.o", "blocks.0.attn.v"];
  const a = (await bindModel(low, files).run("forward", inputs, { taps })).taps;
  const b = (await bindModel(exact, files).run("forward", inputs, { taps })).taps;
  // Block 0 sees identical inputs on both paths, so its attention output differs only by the
  // approximation: ≤ 2ε/(1−ε)·‖V‖∞, plus float32 storage of the output (2^-24·‖V‖∞ each side).
  const vMax = maxAbs(b["blocks.0.attn.v"]!.data);
  const bound = report.errorFactor! * vMax + 2 ** -22 * vMax;
  const err = maxAbsDiff(a["blocks.0.attn.o"]!.data, b["blocks.0.attn.o"]!.data);
  assert.ok(err <= bound, `error ${err} exceeds bound ${bound}`);
  assert.ok(err > 0, "the low-rank path must actually differ from the exact one");
  assert.ok(low.guardStats!.checks > 0 && low.guardStats!.fallbacks === 0);
});
