/**
 * @file Polynomial approximations of exp on [−β, β] with a relative-error guarantee, and the
 * smallest degree that meets ε.
 *
 * Both families come with an analytic bound on the relative error (so the choice is provable) and
 * are also checked on a dense float64 grid with the exact monomial coefficients the kernels use:
 * - Taylor at 0: |R_g(x)| ≤ β^{g+1} e^{β} / (g+1)!, and e^x ≥ e^{−β}, so rel ≤ β^{g+1} e^{2β} / (g+1)!.
 * - Chebyshev interpolant (g+1 Chebyshev nodes on [−β, β]): |f − p| ≤ 2 (β/2)^{g+1} e^{β} / (g+1)!,
 *   so rel ≤ 2 (β/2)^{g+1} e^{2β} / (g+1)!.
 */

/** A polynomial family for exp. */
export type Family = "taylor" | "chebyshev";

/** A chosen approximation: P(x) = Σ_t coeffs[t] x^t on [−beta, beta]. */
export interface ExpPoly {
  readonly family: Family;
  readonly degree: number;
  readonly beta: number;
  /** Monomial coefficients p_0..p_g. */
  readonly coeffs: readonly number[];
  /** Analytic upper bound of max |P(x) − e^x| / e^x on the interval. */
  readonly boundRelError: number;
  /** The same maximum measured on a dense grid (float64). */
  readonly measuredRelError: number;
  /** P > 0 on the grid (implied by a relative error < 1; checked anyway). */
  readonly positive: boolean;
}

/** Degrees beyond this are not tried: the rank C(d+g, g) is then useless for any d ≥ 2. */
export const MAX_DEGREE = 40;

function factorial(n: number): number {
  let f = 1;
  for (let i = 2; i <= n; i++) f *= i;
  return f;
}

/** Analytic relative-error bound of the degree-g approximation of exp on [−β, β]. */
export function analyticBound(family: Family, g: number, beta: number): number {
  const base = family === "taylor" ? beta : beta / 2;
  const lead = family === "taylor" ? 1 : 2;
  return lead * base ** (g + 1) * Math.exp(2 * beta) / factorial(g + 1);
}

/** Taylor coefficients 1/t!. */
function taylorCoeffs(g: number): number[] {
  return Array.from({ length: g + 1 }, (_, t) => 1 / factorial(t));
}

/**
 * Monomial coefficients of the Chebyshev interpolant of exp on [−β, β] at g+1 Chebyshev nodes:
 * Chebyshev-basis coefficients from the nodes, then T_k(x/β) expanded into powers of x.
 */
function chebyshevCoeffs(g: number, beta: number): number[] {
  const n = g + 1;
  const c = new Array<number>(n).fill(0); // Chebyshev-basis coefficients
  for (let k = 0; k < n; k++) {
    let s = 0;
    for (let j = 0; j < n; j++) {
      const theta = (Math.PI * (j + 0.5)) / n;
      s += Math.exp(beta * Math.cos(theta)) * Math.cos(k * theta);
    }
    c[k] = ((k === 0 ? 1 : 2) / n) * s;
  }
  // T_0 = 1, T_1 = y, T_{k+1} = 2y T_k − T_{k−1}, in powers of y = x/β.
  let prev = [1], cur = [0, 1];
  const powY = new Array<number>(n).fill(0);
  powY[0]! += c[0]!;
  if (n > 1) powY[1]! += c[1]!;
  for (let k = 2; k < n; k++) {
    const next = new Array<number>(k + 1).fill(0);
    cur.forEach((a, i) => (next[i + 1]! += 2 * a));
    prev.forEach((a, i) => (next[i]! -= a));
    next.forEach((a, i) => (powY[i]! += c[k]! * a));
    [prev, cur] = [cur, next];
  }
  return powY.map((a, t) => a / beta ** t);
}

/** Evaluates Σ p_t x^t (Horner). */
export function evalPoly(p: readonly number[], x: number): number {
  let s = 0;
  for (let t = p.length - 1; t >= 0; t--) s = s * x + p[t]!;
  return s;
}

/** max |P(x) − e^x| / e^x on a grid of `points` over [−β, β], and whether P stays positive. */
export function measureRelError(p: readonly number[], beta: number, points = 4097): { max: number; positive: boolean } {
  let max = 0, positive = true;
  for (let i = 0; i < points; i++) {
    const x = -beta + (2 * beta * i) / (points - 1);
    const v = evalPoly(p, x);
    if (!(v > 0)) positive = false;
    max = Math.max(max, Math.abs(v - Math.exp(x)) / Math.exp(x));
  }
  return { max, positive };
}

/** The degree-g approximation of `family` on [−β, β], with both error figures. */
export function expPoly(family: Family, g: number, beta: number): ExpPoly {
  const coeffs = family === "taylor" || beta === 0 ? taylorCoeffs(g) : chebyshevCoeffs(g, beta);
  const { max, positive } = measureRelError(coeffs, beta);
  return {
    family,
    degree: g,
    beta,
    coeffs,
    boundRelError: analyticBound(family, g, beta),
    measuredRelError: max,
    positive,
  };
}

/**
 * The smallest degree whose analytic bound AND measured error are ≤ ε and which stays positive;
 * undefined when no degree up to MAX_DEGREE does (then only exact attention is safe).
 */
export function smallestDegree(family: Family, beta: number, eps: number): ExpPoly | undefined {
  for (let g = 0; g <= MAX_DEGREE; g++) {
    if (analyticBound(family, g, beta) > eps) continue;
    const p = expPoly(family, g, beta);
    if (p.measuredRelError <= eps && p.positive) return p;
  }
  return undefined;
}

/** C(n, k), computed exactly in integers and rounded once to a double (exact below 2^53). */
export function binomial(n: number, k: number): number {
  let r = 1n;
  for (let i = 1; i <= k; i++) r = (r * BigInt(n - k + i)) / BigInt(i); // each prefix is C(n−k+i, i): exact
  return Number(r);
}

/** Rank of the feature map: monomials of degree ≤ g in d variables. */
export function rank(d: number, g: number): number {
  return binomial(d + g, g);
}

/** The looser rank bound C(2(g+d), 2g) of the bounded-entry paper, for reference. */
export function paperRankBound(d: number, g: number): number {
  return binomial(2 * (g + d), 2 * g);
}
