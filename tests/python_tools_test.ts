/**
 * @file The Python tools under `tools/`: without torch, numpy or Pillow each one prints its usage or one
 * line saying how to install what it needs, never a traceback; and `convert_pth.py` (with a Python that has
 * torch) writes a safetensors file the project's reader reads back, tensor for tensor.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readSafetensors } from "../runtime/safetensors.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const THIRD_PARTY = ["torch", "numpy", "PIL"];

/** Runs `python` with arguments in the repository's folder. */
async function run(python: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(python, { args, cwd: ROOT, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  return { code: r.code, out: text.decode(r.stdout), err: text.decode(r.stderr) };
}

/** The first of these Pythons that exists, and whether it imports torch. */
async function findPython(candidates: string[], withTorch: boolean): Promise<string | undefined> {
  for (const python of candidates) {
    try {
      const r = await run(python, ["-c", "import torch"]);
      if ((r.code === 0) === withTorch) return python;
    } catch {
      // not installed
    }
  }
  return undefined;
}

const PYTHON = await findPython(["python3", "/usr/bin/python3"], false) ??
  await findPython(["python3", "/usr/bin/python3"], true);
const TORCH_PYTHON = await findPython(["/usr/bin/python3", "python3"], true);

/** The Python scripts under tools/ that run as programs. */
async function pythonTools(): Promise<string[]> {
  const out: string[] = [];
  for (const dir of ["tools", "tools/train"]) {
    for await (const e of Deno.readDir(join(ROOT, dir))) {
      if (!e.isFile || !e.name.endsWith(".py")) continue;
      const text = await Deno.readTextFile(join(ROOT, dir, e.name));
      if (text.includes('if __name__ == "__main__":')) out.push(`${dir}/${e.name}`);
    }
  }
  return out.sort();
}

/** Runs a tool as its own program, with the given modules made unimportable. */
function withoutModules(tool: string, args: string[], blocked = THIRD_PARTY): string[] {
  const code = [
    "import runpy, sys",
    `for m in ${JSON.stringify(blocked)}: sys.modules[m] = None`,
    `sys.argv = ${JSON.stringify([tool, ...args])}`,
    `sys.path.insert(0, ${JSON.stringify(join(ROOT, tool, ".."))})`,
    `runpy.run_path(${JSON.stringify(tool)}, run_name="__main__")`,
  ].join("\n");
  return ["-c", code];
}

/** A one-line refusal naming what to install. */
function assertInstallLine(what: string, r: { code: number; out: string; err: string }, debian: RegExp): void {
  assert.equal(r.code, 1, `${what}: exit status\n${r.err}`);
  assert.ok(!r.err.includes("Traceback"), `${what}: a traceback\n${r.err}`);
  assert.equal(r.err.trim().split("\n").length, 1, `${what}: one line\n${r.err}`);
  assert.match(r.err, /apt-get install [^`]+`/, what);
  assert.match(r.err, debian, what);
}

Deno.test({
  name: "python tools: without torch, numpy and Pillow each prints its usage or how to install them",
  ignore: PYTHON === undefined,
  async fn() {
    const tools = await pythonTools();
    assert.ok(tools.includes("tools/convert_pth.py") && tools.length >= 7, tools.join(", "));
    let refused = 0;
    for (const tool of tools) {
      const r = await run(PYTHON!, withoutModules(tool, ["--help"]));
      if (r.code === 0) {
        assert.match(r.out, /^usage: /, `${tool} --help`);
        continue;
      }
      refused++;
      assertInstallLine(tool, r, /python3-(torch libopenblas0-pthread|numpy|pil)/);
    }
    assert.ok(refused >= 6, `${refused} tools refused`);

    // convert_pth.py reads its arguments first (--help above needs no torch), then asks for torch.
    const r = await run(PYTHON!, withoutModules("tools/convert_pth.py", ["README.md", "out/x.safetensors"]));
    assertInstallLine("convert_pth.py", r, /apt-get install python3-torch libopenblas0-pthread`.*pip install torch/);
    assert.match(r.err, /^convert_pth: needs PyTorch/);
  },
});

Deno.test({
  name: "python tools: convert_pth.py under a Python without torch says how to install it",
  ignore: await findPython(["python3"], false) === undefined,
  async fn() {
    const r = await run("python3", ["tools/convert_pth.py", "README.md", "out/x.safetensors"]);
    assertInstallLine("convert_pth.py", r, /python3-torch libopenblas0-pthread/);
  },
});

Deno.test({
  name: "python tools: convert_pth.py writes what the reader reads back (dtypes, shapes, values, --drop)",
  ignore: TORCH_PYTHON === undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "varc_convert_" });
    try {
      const pth = join(dir, "in.pth"), out = join(dir, "out.safetensors");
      const make = await run(TORCH_PYTHON!, [
        "-c",
        `import torch
g = torch.Generator().manual_seed(0)
sd = {
    "blocks.0.w": torch.randn(3, 5, generator=g),
    "blocks.0.b": torch.randn(5, generator=g).double(),
    "lvl_1L": torch.arange(7, dtype=torch.int64).view(1, 7),
    "half": torch.randn(2, 2, generator=g).bfloat16(),
    "encoder.conv.weight": torch.zeros(4),
    "attn_bias_for_masking": torch.zeros(1, 1, 2, 2),
}
torch.save({"model": sd}, ${JSON.stringify(pth)})
print(sd["blocks.0.w"].flatten().tolist())`,
      ]);
      assert.equal(make.code, 0, make.err);
      const weights = JSON.parse(make.out) as number[];
      const r = await run(TORCH_PYTHON!, [
        "tools/convert_pth.py",
        pth,
        out,
        "--drop",
        "encoder.*",
        "attn_bias_for_masking",
      ]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /state_dict from key "model"/);
      assert.match(r.out, /wrote 4 tensors .*; dropped 2$/m);
      const file = await readSafetensors(out);
      assert.deepEqual(
        [...file.entries].map(([name, e]) => [name, e.dtype, e.shape]),
        [
          ["blocks.0.b", "F64", [5]],
          ["lvl_1L", "I64", [1, 7]],
          ["blocks.0.w", "F32", [3, 5]],
          ["half", "BF16", [2, 2]],
        ],
      );
      assert.deepEqual(Array.from(file.f32("blocks.0.w")), Array.from(Float32Array.from(weights)));
      assert.deepEqual(Array.from(file.i32("lvl_1L")), [0, 1, 2, 3, 4, 5, 6]);
      assert.equal(file.metadata.converted_from, "in.pth");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
