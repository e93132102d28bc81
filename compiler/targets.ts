/**
 * @file The built-in code generation targets, declared once: compile options, the CLI, the esbuild
 * plugin and the backend table all read this table. Plugins may register more backends by name
 * (`build.addBackend`), which `varc compile --plugin FILE --target NAME` selects.
 */
import type { Backend } from "./backends/backend.ts";
import { jsBackend } from "./backends/js/mod.ts";
import { webgpuBackend } from "./backends/webgpu/mod.ts";

/** Each built-in target: its backend, whether its modules run on a device, and one line for help texts. */
export const TARGETS = {
  js: { backend: jsBackend, device: false, summary: "float32 JS with WebAssembly SIMD kernels on the CPU" },
  webgpu: {
    backend: webgpuBackend,
    device: true,
    summary: "WGSL kernels through navigator.gpu, tensors resident on the device",
  },
} as const satisfies Record<string, { backend: Backend; device: boolean; summary: string }>;

/** A built-in target. */
export type TargetName = keyof typeof TARGETS;

/** The built-in targets, in the table's order. */
export const TARGET_NAMES = Object.keys(TARGETS) as TargetName[];

/** Whether `t` names a built-in target. */
export const isTargetName = (t: unknown): t is TargetName => typeof t === "string" && Object.hasOwn(TARGETS, t);

/** Target names for messages: `"js" or "webgpu"`, with any extra choices (e.g. "auto") last. */
export function targetChoices(extra: readonly string[] = []): string {
  const all = [...TARGET_NAMES, ...extra].map((t) => `"${t}"`);
  return all.length > 1 ? `${all.slice(0, -1).join(", ")} or ${all.at(-1)}` : all.join("");
}
