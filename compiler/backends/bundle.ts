/** @file esbuild: bundles a generated module with the runtime files it imports (`varc:*`). */
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

const runtimeResolver: esbuild.Plugin = {
  name: "varc-runtime",
  setup(build) {
    build.onResolve({ filter: /^varc:/ }, (args) => {
      const path = RUNTIME[args.path];
      return path ? { path } : { errors: [{ text: `Unknown runtime module "${args.path}"` }] };
    });
  },
};

/** Bundles TypeScript source into one ES module string. */
export async function bundleModule(source: string, options: { minify: boolean }): Promise<string> {
  try {
    const result = await esbuild.build({
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
    });
    return result.outputFiles[0]!.text;
  } finally {
    await esbuild.stop();
  }
}
