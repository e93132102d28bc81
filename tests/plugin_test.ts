/** @file The plugin API: passes inserted by name, backends registered by name, misuse rejected. */
import assert from "node:assert/strict";
import { compile, CompileError, type Plugin } from "../compiler/mod.ts";
import { error } from "../compiler/diagnostics.ts";
import { Op } from "../compiler/ir/ops.ts";
import type { Pass } from "../compiler/pass.ts";
import { runCli } from "./_samples.ts";
import { calls } from "./specs/ir_text_plugin.ts";

const SPEC = "tests/specs/tiny_golden.var.ts";

Deno.test("a plugin pass runs at its position and sees typed IR", async () => {
  const seen: string[] = [];
  const countAttention: Pass = {
    name: "count-attention",
    summary: "Count attention nodes",
    run(module) {
      const typed = module.nodes.every((n) => n.type !== undefined);
      seen.push(`${module.nodes.filter((n) => n.op === Op.Attention).length} attention, typed=${typed}`);
      return module;
    },
  };
  const plugin: Plugin = { name: "counter", setup: (b) => b.addPass(countAttention, { after: "infer-shapes" }) };
  await compile(SPEC, {}, { plugins: [plugin] });
  // tiny_golden: 1 block in `forward` and in each of 2 `step_s` entries, 4 decoder attention blocks.
  assert.deepEqual(seen, ["7 attention, typed=true"]);
});

Deno.test("a plugin pass's error diagnostic stops the pipeline and names the pass", async () => {
  const reject: Pass = {
    name: "reject-attention",
    summary: "Reject every attention node",
    run(module, ctx) {
      for (const n of module.nodes) {
        if (n.op === Op.Attention) ctx.report(error("no-attention", "Attention is not allowed", n.span));
      }
      return module;
    },
  };
  const plugin: Plugin = { name: "policy", setup: (b) => b.addPass(reject, { before: "norm-bounds" }) };
  const e = await compile(SPEC, {}, { plugins: [plugin] }).then(() => undefined, (e) => e);
  assert.ok(e instanceof CompileError);
  assert.equal(e.diagnostics[0]!.pass, "reject-attention");
  assert.match(e.message, /compiler\/dsl\/lib\/var\.ts:\d+:\d+: error\[no-attention\]/);
});

Deno.test("a plugin backend is selected by --target name", async () => {
  const plugin: Plugin = {
    name: "ir-text",
    setup: (b) =>
      b.addBackend({
        name: "ir-text",
        emit: (m) => Promise.resolve({ source: m.name, bundle: `export const nodes = ${m.nodes.length};`, dts: "" }),
      }),
  };
  const c = await compile(SPEC, { target: "ir-text" }, { plugins: [plugin] });
  assert.match(c.emitted.bundle, /export const nodes = \d+;/);
  await assert.rejects(
    compile(SPEC, { target: "ir-text" }),
    /Target "ir-text" has no backend in this build \(available: js, webgpu\)/,
  );
});

Deno.test("plugin misuse is a TypeError naming the problem", async () => {
  const pass: Pass = { name: "x", summary: "x", run: (m) => m };
  const bad: Plugin = { name: "bad", setup: (b) => b.addPass(pass, { after: "no-such-pass" }) };
  await assert.rejects(compile(SPEC, {}, { plugins: [bad] }), /no pass named "no-such-pass"/);
  const dup: Plugin = {
    name: "dup",
    setup: (b) => b.addPass({ ...pass, name: "infer-shapes" }, { after: "infer-shapes" }),
  };
  await assert.rejects(compile(SPEC, {}, { plugins: [dup] }), /a pass named "infer-shapes" already exists/);
  await assert.rejects(compile(SPEC, {}, { plugins: [{} as Plugin] }), /Invalid plugin/);
  await assert.rejects(compile(SPEC, { bogus: 1 } as never), /Invalid option in compile\(\): "bogus"/);
});

Deno.test("varc compile --plugin FILE --target NAME selects the plugin's backend (its setup run once); without the plugin the name is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "varc_plugin_" });
  calls.setup = 0;
  const ok = await runCli(
    "compile",
    SPEC,
    "--plugin",
    "tests/specs/ir_text_plugin.ts",
    "--target",
    "ir-text",
    "--out",
    dir,
  );
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /compiled tiny_golden .* for ir-text/);
  assert.match(await Deno.readTextFile(`${dir}/model.src.ts`), /^\/\/ tiny_golden: \d+ nodes\n$/);
  assert.equal(calls.setup, 1, "the plugin's setup runs once: the target is looked up where the compile applies it");
  const without = await runCli("compile", SPEC, "--target", "ir-text", "--out", dir);
  assert.equal(without.code, 1);
  assert.match(
    without.err,
    /--target must be "js", "webgpu" or "auto", got ir-text \(a plugin's backend needs --plugin/,
  );
  const unknown = await runCli(
    "compile",
    SPEC,
    "--plugin",
    "tests/specs/ir_text_plugin.ts",
    "--target",
    "nope",
    "--out",
    dir,
  );
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /--target must be "js", "webgpu", "auto" or "ir-text", got nope/);
  assert.equal(calls.setup, 2);
  const notPlugin = await runCli(
    "compile",
    SPEC,
    "--plugin",
    "compiler/targets.ts",
    "--target",
    "ir-text",
    "--out",
    dir,
  );
  assert.equal(notPlugin.code, 1);
  assert.match(notPlugin.err, /--plugin .*: its default export must be a plugin \{ name, setup\(build\) \}/);
  await Deno.remove(dir, { recursive: true });
});
