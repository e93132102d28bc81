/** @file Shared test helpers: fixture paths, comparisons, compiling and running a spec on the JS target. */
import assert from "node:assert/strict";
import { compile } from "../compiler/mod.ts";
import { importModel, type LoadedModel, loadModel, type ModelModule } from "../runtime/mod.ts";
import type { Gpu } from "../runtime/webgpu/device.ts";

/** The parity fixture copied into the repository (official PyTorch VAR outputs). */
export const FIXTURE = new URL("./fixtures/var_tiny_a/", import.meta.url).pathname;

/** max |a - b| over all elements; lengths must agree. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** max |x| over all elements. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Throws with the measured difference when it exceeds `tol`. */
export function assertClose(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): number {
  const d = maxAbsDiff(actual, expected);
  if (!(d <= tol)) throw new Error(`${what}: max |diff| ${d.toExponential(3)} exceeds ${tol.toExponential(1)}`);
  return d;
}

/** Compiles a spec for the JS target and imports the bundled module. */
export async function compileModule(spec: string): Promise<ModelModule> {
  const compiled = await compile(spec, { target: "js", minify: true });
  return await importModel(compiled.emitted.bundle);
}

/** Compiles a spec and binds the fixture checkpoints. */
export async function fixtureModel(spec = "examples/var_tiny_a.var.ts"): Promise<LoadedModel> {
  return await loadModel(await compileModule(spec), {
    var: `${FIXTURE}var.safetensors`,
    vae: `${FIXTURE}vae.safetensors`,
  });
}

/** Runs `f` with the tiled and then the register-only kernels, restoring the device's choice. */
export async function bothForms(g: Gpu, f: (form: string) => Promise<void>): Promise<void> {
  const was = g.tiling;
  try {
    for (const tiling of [true, false]) {
      g.tiling = tiling;
      await f(tiling ? "tiled" : "register");
    }
  } finally {
    g.tiling = was;
  }
}

/** Runs `deno check --quiet ARGS` in cwd and fails with its diagnostics unless it exits 0. */
export async function assertDenoChecks(args: readonly string[], cwd: string): Promise<void> {
  const check = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--quiet", ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));
}
