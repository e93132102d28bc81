/** @file Compile options and their validation. */

/** Code generation targets. */
export type TargetName = "js" | "webgpu";

/** Options that change what the compiler produces. */
export interface CompileOptions {
  readonly target: TargetName;
  /** Minify the bundled module (default true). */
  readonly minify: boolean;
}

/** Defaults for every option. */
export const DEFAULT_OPTIONS: CompileOptions = { target: "js", minify: true };

/** Fills defaults and rejects unknown keys or values (API misuse, so TypeError). */
export function resolveOptions(partial: Partial<CompileOptions> = {}): CompileOptions {
  for (const key of Object.keys(partial)) {
    if (!(key in DEFAULT_OPTIONS)) throw new TypeError(`Invalid option in compile(): "${key}"`);
  }
  const options = { ...DEFAULT_OPTIONS, ...partial };
  if (options.target !== "js" && options.target !== "webgpu") {
    throw new TypeError(`Invalid target "${options.target}": expected "js" or "webgpu"`);
  }
  return options;
}
