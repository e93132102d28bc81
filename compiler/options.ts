/** @file Compile options and their validation. */

export type { TargetName } from "./targets.ts";

/** Checkpoint tensors available at compile time (for static-exact and propagated bounds). */
export type WeightLookup = (name: string, source: "var" | "vae") => Float32Array | undefined;

/** Per tapped q label (e.g. "blocks.0.attn.q"): measured max ‖q_i‖₂ and ‖k_j‖₂ per head. */
export type Calibration = Readonly<Record<string, { readonly q: readonly number[]; readonly k: readonly number[] }>>;

/** Options that change what the compiler produces. */
export interface CompileOptions {
  /** Backend name: a built-in target or one a plugin registered. */
  readonly target: string;
  /** Minify the bundled module (default true). */
  readonly minify: boolean;
  /** How attention is lowered: by the cost model, or forced. */
  readonly attention: "auto" | "exact" | "lowrank";
  /** Target entrywise relative error of the low-rank exp approximation. */
  readonly eps: number;
  /** Polynomial family of the low-rank kernels. */
  readonly family: "taylor" | "chebyshev";
  /** Polynomial degree override (0: the smallest degree meeting eps). */
  readonly degree: number;
  /** Check every float result for NaN/Inf at run time and name the first node that produced one. */
  readonly checkNumerics: boolean;
  /** Checkpoint tensors, when a checkpoint was given (`--var`). */
  readonly weights?: WeightLookup;
  /** Measured norms from `--calibrate`. */
  readonly calibration?: Calibration;
}

/** Defaults for every option. */
export const DEFAULT_OPTIONS: CompileOptions = {
  target: "js",
  minify: true,
  attention: "auto",
  eps: 1e-3,
  family: "chebyshev",
  degree: 0,
  checkNumerics: false,
};

const KNOWN = new Set([...Object.keys(DEFAULT_OPTIONS), "weights", "calibration"]);

/** Fills defaults and rejects unknown keys or values (API misuse, so TypeError). */
export function resolveOptions(partial: Partial<CompileOptions> = {}): CompileOptions {
  for (const key of Object.keys(partial)) {
    if (!KNOWN.has(key)) throw new TypeError(`Invalid option in compile(): "${key}"`);
  }
  const o = { ...DEFAULT_OPTIONS, ...partial };
  const bad = (what: string) => {
    throw new TypeError(`Invalid option in compile(): ${what}`);
  };
  if (typeof o.target !== "string" || typeof o.minify !== "boolean") {
    bad(JSON.stringify({ target: o.target, minify: o.minify }));
  }
  if (!["auto", "exact", "lowrank"].includes(o.attention)) {
    bad(`attention must be auto, exact or lowrank, got "${o.attention}"`);
  }
  if (!(o.eps > 0 && o.eps < 1)) bad(`eps must be in (0, 1), got ${o.eps}`);
  if (o.family !== "taylor" && o.family !== "chebyshev") bad(`family must be taylor or chebyshev, got "${o.family}"`);
  if (!(Number.isInteger(o.degree) && o.degree >= 0 && o.degree <= 40)) {
    bad(`degree must be an integer in [0, 40], got ${o.degree}`);
  }
  return o;
}
