/**
 * @file esbuild: bundles a generated module with the runtime files it imports (`varc:*`). The
 * resolver and the service handling are shared with the esbuild plugin (`compiler/esbuild_plugin.ts`).
 */
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";

/** Runtime files generated code may import, by virtual specifier. */
const RUNTIME: Readonly<Record<string, string>> = {
  "varc:kernels": fileURLToPath(new URL("../../runtime/js/kernels.ts", import.meta.url)),
  "varc:exec": fileURLToPath(new URL("../../runtime/js/exec.ts", import.meta.url)),
  "varc:lowrank": fileURLToPath(new URL("../../runtime/js/lowrank.ts", import.meta.url)),
  "varc:webgpu": fileURLToPath(new URL("../../runtime/webgpu/kernels.ts", import.meta.url)),
  "varc:webgpu-device": fileURLToPath(new URL("../../runtime/webgpu/device.ts", import.meta.url)),
};

/** Resolves the `varc:*` specifiers of generated code to the runtime files. */
export const runtimeResolver: esbuild.Plugin = {
  name: "varc-runtime",
  setup(build) {
    build.onResolve({ filter: /^varc:/ }, (args) => {
      const path = RUNTIME[args.path];
      return path ? { path } : { errors: [{ text: `Unknown runtime module "${args.path}"` }] };
    });
  },
};

let holds = 0;

/**
 * Keeps esbuild's service running until the returned function is called. `withEsbuild` stops the
 * service when its work ends, unless a hold is still open: a spec compiled inside another build
 * (the esbuild plugin) must not stop the service that build runs on.
 */
export function holdEsbuild(): () => void {
  holds++;
  let open = true;
  return () => {
    if (open) open = false, holds--;
  };
}

/** Runs `work` with esbuild, then stops its service (a child process) unless someone still holds it. */
export async function withEsbuild<T>(work: () => Promise<T>): Promise<T> {
  const release = holdEsbuild();
  try {
    return await work();
  } finally {
    release();
    if (holds === 0) await esbuild.stop();
  }
}

/** Bundles TypeScript source into one ES module string. */
export async function bundleModule(source: string, options: { minify: boolean }): Promise<string> {
  const result = await withEsbuild(() =>
    esbuild.build({
      stdin: { contents: source, loader: "ts", sourcefile: "model.ts", resolveDir: "." },
      bundle: true,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      write: false,
      minify: options.minify,
      legalComments: "none",
      plugins: [runtimeResolver],
      logLevel: "silent",
    })
  );
  return result.outputFiles[0]!.text;
}
