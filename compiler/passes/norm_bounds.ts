/**
 * @file Pass "norm-bounds": for every attention node, a bound β on its logits s·⟨q_i, k_j⟩, per head,
 * with its source (static-exact, static-propagated, calibrated, or none).
 *
 * Facts propagated per node: an interval [lo, hi] containing every entry, and `row`, an upper bound
 * of the ℓ2 norm of any vector along the last axis. With a checkpoint, small param-only
 * subexpressions (e.g. the temperatures exp(min(scale_mul, ln 100))) are evaluated exactly.
 */
import type { IrModule, Node, TensorType } from "../ir/node.ts";
import { type AttentionBound, Op, type OpParams } from "../ir/ops.ts";
import type { CompileOptions } from "../options.ts";
import type { Pass } from "../pass.ts";

/** What is known about the entries of one tensor. */
export interface Fact {
  readonly lo: number;
  readonly hi: number;
  /** Upper bound of ‖x‖₂ over any vector along the last axis. */
  readonly row: number;
  /** Exact values (float64) for small param-only tensors when the checkpoint is known. */
  readonly values?: Float64Array;
}

const UNKNOWN: Fact = { lo: -Infinity, hi: Infinity, row: Infinity };
const MAX_VALUES = 1 << 16;
/** Max Σ|w| of a row of a 1-D PyTorch bicubic (a = −0.75) resampling matrix is < 1.5; squared for 2-D. */
const BICUBIC_GAIN = 2.25;

interface Ctx {
  readonly nodes: readonly Node[];
  readonly facts: Fact[];
  readonly options: Readonly<CompileOptions>;
}

type BoundRule<O extends Op> = (node: Node<O>, ins: readonly Fact[], c: Ctx) => Fact;

const absMax = (f: Fact) => Math.max(Math.abs(f.lo), Math.abs(f.hi));
const last = (t: TensorType) => (t.shape.at(-1) === "B" ? Infinity : (t.shape.at(-1) as number | undefined) ?? 1);
const sym = (a: number, row: number): Fact => ({ lo: -a, hi: a, row });
const fromAbs = (a: number, t: TensorType): Fact => sym(a, a * Math.sqrt(last(t)));
/** Row bound of `f` (shaped `t`) broadcast against an output whose last axis is `n`. */
const rowIn = (f: Fact, t: TensorType, n: number) => (last(t) === n ? f.row : absMax(f) * Math.sqrt(n));

function attentionOut(_: Node, [, , v]: readonly Fact[]): Fact {
  return { lo: v!.lo, hi: v!.hi, row: v!.row }; // each output row is a convex combination of v rows
}

/** One rule per op; the type checker keeps this table exhaustive. */
export const boundRules: { readonly [O in Op]: BoundRule<O> } = {
  [Op.Input]: () => UNKNOWN,
  [Op.Param]: (n, _, c) => paramFact(n, c),
  [Op.LevelIds]: (n) => ({ lo: 0, hi: n.params.schedule.length - 1, row: Infinity }),
  [Op.Gather]: (_, [table]) => ({ lo: table!.lo, hi: table!.hi, row: table!.row }), // every row: every class
  [Op.Linear]: (n, [x, , b], c) => {
    const wn = weightNorms(n.inputs[1]!, c);
    const bNorm = b ? b.row : 0, bMax = b ? absMax(b) : 0;
    const row = wn.spectral * x!.row + bNorm;
    const entry = wn.maxRow * x!.row + bMax;
    const fact = { lo: -entry, hi: entry, row: Math.min(row, entry * Math.sqrt(wn.rows)) };
    // a fused silu or gelu: |act(x)| ≤ |x|, act(x) ≥ −0.2785 (silu), −0.1701 (gelu)
    if (n.params.act === "none") return fact;
    return { ...fact, lo: Math.max(fact.lo, n.params.act === "silu" ? -0.2785 : -0.1701) };
  },
  [Op.LayerNorm]: (n, [, s, b]) => {
    const C = last(n.type!);
    if (!s || !b) return sym(Math.sqrt(C - 1), Math.sqrt(C));
    // modulated: |h + h·s + b| ≤ |h|·(1 + max|s|) + max|b|, ‖·‖₂ ≤ √C·(1 + max|s|) + ‖b‖₂
    const grow = 1 + absMax(s);
    return sym(Math.sqrt(C - 1) * grow + absMax(b), Math.sqrt(C) * grow + b.row);
  },
  [Op.GroupNorm]: (n, [, w, b]) => {
    const [, ch, h, wd] = n.type!.shape as number[];
    const size = (ch! / n.params.groups) * h! * wd!; // values per group; a normalised entry is ≤ √(size − 1)
    const v = fromAbs(Math.sqrt(size - 1) * absMax(w!) + absMax(b!), n.type!);
    return n.params.silu ? { ...v, lo: Math.max(v.lo, -0.2785) } : v; // silu(x) ≥ max(x, −0.2785)
  },
  [Op.L2Normalize]: () => sym(1, 1),
  [Op.Unary]: (n, [x]) => {
    switch (n.params.fn) {
      case "exp":
        return { lo: Math.exp(x!.lo), hi: Math.exp(x!.hi), row: Math.exp(x!.hi) * Math.sqrt(last(n.type!)) };
      case "silu": // |silu(x)| ≤ |x|; min silu = −0.2785
        return { lo: x!.lo >= 0 ? 0 : -0.2785, hi: Math.max(x!.hi, 0), row: x!.row };
      case "gelu_tanh": // |gelu(x)| ≤ |x|; min gelu = −0.1701
        return { lo: x!.lo >= 0 ? 0 : -0.1701, hi: Math.max(x!.hi, 0), row: x!.row };
    }
  },
  [Op.Binary]: (n, [a, b, g], c) => {
    const N = last(n.type!);
    const [ta, tb, tg] = n.inputs.map((i) => c.nodes[i]!.type!);
    const rows = { a: { ...a!, row: rowIn(a!, ta!, N) }, b: { ...b!, row: rowIn(b!, tb!, N) } };
    if (!g) return binaryFact(n.params.fn, rows.a, rows.b, N);
    const product = binaryFact("mul", rows.b, { ...g, row: rowIn(g, tg!, N) }, N); // a + b·c
    return binaryFact("add", rows.a, product, N);
  },
  [Op.Scalar]: (n, [x]) => {
    const { fn, value: v } = n.params;
    const N = Math.sqrt(last(n.type!));
    if (fn === "mul") {
      return { lo: Math.min(x!.lo * v, x!.hi * v), hi: Math.max(x!.lo * v, x!.hi * v), row: x!.row * Math.abs(v) };
    }
    if (fn === "add") return { lo: x!.lo + v, hi: x!.hi + v, row: x!.row + Math.abs(v) * N };
    const lo = fn === "min" ? Math.min(x!.lo, v) : Math.max(x!.lo, v);
    const hi = fn === "min" ? Math.min(x!.hi, v) : Math.max(x!.hi, v);
    return { lo, hi, row: Math.max(Math.abs(lo), Math.abs(hi)) * N };
  },
  [Op.Reshape]: (n, [x], c) => {
    const before = last(c.nodes[n.inputs[0]!]!.type!), after = last(n.type!);
    if (after <= before && before % after === 0) return { lo: x!.lo, hi: x!.hi, row: x!.row }; // rows split into pieces
    if (after % before === 0) return { lo: x!.lo, hi: x!.hi, row: x!.row * Math.sqrt(after / before) };
    return fromAbs(absMax(x!), n.type!);
  },
  [Op.Permute]: (n, [x]) => {
    const r = n.params.perm.length;
    return n.params.perm[r - 1] === r - 1 ? { lo: x!.lo, hi: x!.hi, row: x!.row } : fromAbs(absMax(x!), n.type!);
  },
  [Op.Heads]: (n, [x, tau]) => {
    // a row of D values: L2-normalised (norm ≤ 1) or a piece of x's row; times |τ| ≤ max |τ|
    const grow = tau ? absMax(tau) : 1;
    if (n.params.eps !== null) return sym(grow, grow);
    return tau ? sym(absMax(x!) * grow, x!.row * grow) : { lo: x!.lo, hi: x!.hi, row: x!.row };
  },
  [Op.Slice]: (_, [x]) => ({ lo: x!.lo, hi: x!.hi, row: x!.row }),
  [Op.Concat]: (n, xs) => {
    const lo = Math.min(...xs.map((x) => x.lo)), hi = Math.max(...xs.map((x) => x.hi));
    const lastAxis = n.params.axis === n.type!.shape.length - 1;
    const row = lastAxis ? Math.sqrt(xs.reduce((a, x) => a + x.row ** 2, 0)) : Math.max(...xs.map((x) => x.row));
    return { lo, hi, row };
  },
  [Op.Attention]: attentionOut,
  [Op.ExactAttention]: attentionOut,
  [Op.LowRankAttention]: attentionOut,
  [Op.LowRankState]: () => UNKNOWN,
  [Op.LowRankRead]: () => UNKNOWN,
  [Op.Conv2d]: (n, [x, , b], c) => {
    const w = c.facts[n.inputs[1]!]!;
    const [co] = c.nodes[n.inputs[1]!]!.type!.shape as number[];
    const perOut = w.values ? maxAbsRowSum(w.values, co!) : absMax(w) * (numelOf(c.nodes[n.inputs[1]!]!.type!) / co!);
    return fromAbs(absMax(x!) * perOut + absMax(b!), n.type!);
  },
  [Op.Interpolate]: (n, [x]) => fromAbs(absMax(x!) * (n.params.mode === "bicubic" ? BICUBIC_GAIN : 1), n.type!),
  [Op.Upsample]: (n, [x]) => fromAbs(absMax(x!), n.type!),
};

function binaryFact(fn: "add" | "sub" | "mul", a: Fact, b: Fact, N: number): Fact {
  if (fn === "add") return { lo: a.lo + b.lo, hi: a.hi + b.hi, row: a.row + b.row };
  if (fn === "sub") return { lo: a.lo - b.hi, hi: a.hi - b.lo, row: a.row + b.row };
  const prods = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi].map((p) => (Number.isNaN(p) ? Infinity : p));
  const lo = Math.min(...prods), hi = Math.max(...prods);
  return {
    lo: Number.isNaN(lo) ? -Infinity : lo,
    hi,
    row: Math.min(a.row * absMax(b), b.row * absMax(a), Math.max(-lo, hi) * Math.sqrt(N)),
  };
}

function numelOf(t: TensorType): number {
  return t.shape.reduce<number>((a, d) => a * (d === "B" ? 1 : d), 1);
}

function maxAbsRowSum(v: Float64Array, rows: number): number {
  const n = v.length / rows;
  let m = 0;
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.abs(v[r * n + i]!);
    m = Math.max(m, s);
  }
  return m;
}

function paramFact(n: Node<Op.Param>, c: Ctx): Fact {
  const w = c.options.weights?.(n.params.name, n.params.source);
  if (!w) return UNKNOWN;
  const width = n.params.shape.at(-1) ?? 1;
  let lo = Infinity, hi = -Infinity, row = 0;
  for (let r = 0; r < w.length; r += width) {
    let s = 0;
    for (let i = r; i < r + width; i++) {
      const x = w[i]!;
      lo = Math.min(lo, x), hi = Math.max(hi, x), s += x * x;
    }
    row = Math.max(row, Math.sqrt(s));
  }
  return { lo, hi, row, ...(w.length <= MAX_VALUES ? { values: Float64Array.from(w) } : {}) };
}

/** Norms of a linear weight [N, K]: an upper bound of the spectral norm, and the largest row norm. */
function weightNorms(id: number, c: Ctx): { spectral: number; maxRow: number; rows: number } {
  const node = c.nodes[id]!;
  const [rows, cols] = node.type!.shape as [number, number];
  const w = node.op === Op.Param ? c.options.weights?.((node.params as OpParams[Op.Param]).name, "var") : undefined;
  if (!w) return { spectral: Infinity, maxRow: Infinity, rows };
  let frob = 0, maxRow = 0, maxRowAbs = 0;
  const colAbs = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    let s = 0, a = 0;
    for (let k = 0; k < cols; k++) {
      const x = w[r * cols + k]!;
      s += x * x, a += Math.abs(x), colAbs[k]! += Math.abs(x);
    }
    frob += s, maxRow = Math.max(maxRow, Math.sqrt(s)), maxRowAbs = Math.max(maxRowAbs, a);
  }
  // ‖W‖₂ ≤ min(‖W‖_F, √(‖W‖₁‖W‖∞)): both are rigorous upper bounds.
  const spectral = Math.min(Math.sqrt(frob), Math.sqrt(Math.max(...colAbs) * maxRowAbs));
  return { spectral, maxRow, rows };
}

/** Per-head upper bounds of a [.., H, .., ..] param-only factor (e.g. τ of shape [1, H, 1, 1]). */
function perHead(f: Fact, t: TensorType, heads: number): number[] {
  if (f.values && t.shape.length === 4 && t.shape[1] === heads && f.values.length === heads) {
    return Array.from(f.values, Math.abs);
  }
  return new Array<number>(heads).fill(absMax(f));
}

/** The bound of one attention node from the facts of its inputs. */
export function attentionBound(node: Node, c: Ctx): AttentionBound {
  const [qId] = node.inputs as [number];
  const kId = newKeys(node.inputs[1]!, c);
  const q = c.nodes[qId]!, k = c.nodes[kId]!;
  const heads = q.type!.shape[1] as number;
  const scale = Math.abs((node.params as { scale: number }).scale);
  const qf = c.facts[qId]!, kf = c.facts[kId]!;
  const vf = c.facts[node.inputs[2]!]!;
  const base = { qAbsMax: absMax(qf), kAbsMax: absMax(kf), qNorm: qf.row, kNorm: kf.row, vAbsMax: absMax(vf) };
  const exact = staticExact(q, k, c, heads);
  if (exact) {
    const betaPerHead = exact.tau.map((t) => scale * t);
    return { ...base, qNorm: Math.max(...exact.tau), kNorm: 1, source: "static-exact", betaPerHead, how: exact.how };
  }
  const propagated = scale * qf.row * kf.row;
  const calibrated = calibratedBound(q, c, heads, scale);
  if (calibrated && !(Math.max(...calibrated.beta) >= propagated)) {
    return { ...base, source: "calibrated", betaPerHead: calibrated.beta, how: calibrated.how };
  }
  if (Number.isFinite(propagated)) {
    return {
      ...base,
      source: "static-propagated",
      betaPerHead: new Array<number>(heads).fill(propagated),
      how: `s·max‖q‖·max‖k‖ with ‖q‖ ≤ ${fmt(qf.row)}, ‖k‖ ≤ ${fmt(kf.row)} propagated through the spec`,
    };
  }
  return {
    ...base,
    source: "none",
    betaPerHead: new Array<number>(heads).fill(Infinity),
    how: "no bound on ‖q‖ or ‖k‖ (give --var, or --calibrate N)",
  };
}

/**
 * In a generation step, k = concat([cache, k_new]) along the tokens: the cached keys were this
 * node's new keys in earlier steps (and were checked then), so the bound is that of k_new.
 */
function newKeys(k: number, c: Ctx): number {
  const node = c.nodes[k]!;
  if (node.op !== Op.Concat || node.inputs.length !== 2) return k;
  const [cache, fresh] = node.inputs as [number, number];
  return c.nodes[cache]!.op === Op.Input ? fresh : k;
}

/** q = l2_normalize(·) · τ (or l2_normalize alone) and k = l2_normalize(·): β_h = s·τ_h exactly. */
function staticExact(q: Node, k: Node, c: Ctx, heads: number): { tau: number[]; how: string } | undefined {
  if (k.op !== Op.L2Normalize) return undefined;
  if (q.op === Op.L2Normalize) {
    return { tau: new Array<number>(heads).fill(1), how: "q and k are L2-normalised: |logit| ≤ s" };
  }
  if (q.op !== Op.Binary || (q.params as OpParams[Op.Binary]).fn !== "mul") return undefined;
  const [a, b] = q.inputs.map((i) => c.nodes[i]!);
  const [unit, factor] = a!.op === Op.L2Normalize ? [a!, b!] : b!.op === Op.L2Normalize ? [b!, a!] : [];
  if (!unit || !factor) return undefined;
  const f = c.facts[factor.id]!;
  if (!Number.isFinite(absMax(f))) return undefined;
  const tau = perHead(f, factor.type!, heads);
  const how = f.values
    ? "q, k L2-normalised per head; τ_h read from the checkpoint"
    : `q, k L2-normalised per head; τ ≤ ${fmt(absMax(f))} from the spec's clamp`;
  return { tau, how };
}

function calibratedBound(q: Node, c: Ctx, heads: number, scale: number): { beta: number[]; how: string } | undefined {
  const data = q.label ? c.options.calibration?.[q.label] : undefined;
  if (!data || data.q.length !== heads) return undefined;
  return {
    beta: data.q.map((qn, h) => scale * qn * data.k[h]!),
    how: `measured by --calibrate on "${q.label}" (not a proof: the run-time guard checks it)`,
  };
}

function fmt(x: number): string {
  return Number.isFinite(x) ? Number(x.toPrecision(4)).toString() : "∞";
}

/** Facts for every node, in order. */
export function computeFacts(module: IrModule, options: Readonly<CompileOptions>): Fact[] {
  const c: Ctx = { nodes: module.nodes, facts: [], options };
  for (const node of module.nodes) {
    const rule = boundRules[node.op] as BoundRule<Op>;
    const fact = rule(node, node.inputs.map((i) => c.facts[i]!), c);
    c.facts.push(withValues(node, fact, c));
  }
  return c.facts;
}

/** Exact values of small elementwise expressions of params (e.g. exp(min(scale_mul, ln 100))). */
function withValues(node: Node, fact: Fact, c: Ctx): Fact {
  if (fact.values || !(node.op === Op.Unary || node.op === Op.Scalar)) return fact;
  const x = c.facts[node.inputs[0]!]!.values;
  if (!x) return fact;
  const p = node.params as { fn: string; value?: number };
  const f = (v: number) => {
    switch (p.fn) {
      case "exp":
        return Math.exp(v);
      case "silu":
        return v / (1 + Math.exp(-v));
      case "gelu_tanh":
        return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
      case "mul":
        return v * p.value!;
      case "add":
        return v + p.value!;
      case "min":
        return Math.min(v, p.value!);
      default:
        return Math.max(v, p.value!);
    }
  };
  const values = x.map(f);
  let lo = Infinity, hi = -Infinity;
  for (const v of values) lo = Math.min(lo, v), hi = Math.max(hi, v);
  return { ...fact, lo, hi, values };
}

/** Annotates every attention node with its bound. */
export const normBounds: Pass = {
  name: "norm-bounds",
  summary: "Bound the logits of every attention node (static-exact, propagated, or calibrated)",
  run(module, ctx) {
    const facts = computeFacts(module, ctx.options);
    const c: Ctx = { nodes: module.nodes, facts, options: ctx.options };
    const nodes = module.nodes.map((n) =>
      n.op === Op.Attention
        ? { ...n, params: { ...(n.params as OpParams[Op.Attention]), bound: attentionBound(n, c) } }
        : n
    );
    return { ...module, nodes };
  },
};
