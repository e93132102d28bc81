/** @file Compile options and their validation. */

/** Code generation targets built in; plugins may register more backends by name. */
export type TargetName = "js" | "webgpu";

/** Options that change what the compiler produces. */
export interface CompileOptions {
  /** Backend name: a built-in target or one a plugin registered. */
  readonly target: string;
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
  if (typeof options.target !== "string" || typeof options.minify !== "boolean") {
    throw new TypeError(`Invalid options in compile(): ${JSON.stringify(partial)}`);
  }
  return options;
}
