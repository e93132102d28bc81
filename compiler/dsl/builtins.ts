/** @file The DSL builtins: one implementation per declaration of `lang.ts`, checked by the type checker. */
import { MAX_PATTERN_LENGTH } from "../../runtime/weights.ts";
import type { SourceSpan } from "../diagnostics.ts";
import { type Dim, Op, type ParamSource } from "../ir/ops.ts";
import type { GraphBuilder } from "./graph.ts";
import type * as Lang from "./lang.ts";
import {
  BatchSym,
  Builtin,
  type CallSite,
  closest,
  describe,
  fail,
  MaskVal,
  ModelVal,
  ObjVal,
  quote,
  TensorRef,
  type Value,
} from "./values.ts";
import { phiIndexTable, validateVarConfig } from "./var_config.ts";

/** Names safe as JS/WGSL identifiers. */
export const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** State-dict names and labels: dotted words. */
export const DOTTED = /^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/;
const MAX_DIM = 1 << 30;
const MAX_ARRAY = 1 << 20;

// ── argument readers: each reports the argument's own span ────────────────

function argSpan(at: CallSite, i: number): SourceSpan {
  return at.argSpans[i] ?? at.span;
}

function badArg(at: CallSite, fn: string, i: number, want: string, got: Value): never {
  fail("bad-argument", `Argument ${i + 1} of "${fn}" must be ${want}, got ${describe(got)}`, argSpan(at, i));
}

function tensorArg(args: Value[], i: number, fn: string, at: CallSite): TensorRef {
  const v = args[i];
  return v instanceof TensorRef ? v : badArg(at, fn, i, "a tensor", v);
}

function numArg(args: Value[], i: number, fn: string, at: CallSite): number {
  const v = args[i];
  return typeof v === "number" && Number.isFinite(v) ? v : badArg(at, fn, i, "a finite number", v);
}

function intArg(args: Value[], i: number, fn: string, at: CallSite, min = 0): number {
  const v = args[i];
  if (typeof v !== "number" || !Number.isInteger(v)) badArg(at, fn, i, "an integer", v);
  if (v < min || v > MAX_DIM) {
    fail("bad-size", `Argument ${i + 1} of "${fn}" must be in [${min}, ${MAX_DIM}], got ${v}`, argSpan(at, i));
  }
  return v;
}

/** `key`: the name becomes a property of an object in generated code (inputs, taps, outputs). */
function strArg(
  args: Value[],
  i: number,
  fn: string,
  at: CallSite,
  pattern: RegExp,
  what: string,
  key = false,
): string {
  const v = args[i];
  if (typeof v !== "string") badArg(at, fn, i, "a string", v);
  if (!pattern.test(v)) {
    fail("unsafe-name", `Cannot use ${quote(v)} as ${what}: it must match ${pattern.source}`, argSpan(at, i), [
      { message: "Names reach generated code and checkpoints; use letters, digits, '_' (and '.' between words)" },
    ]);
  }
  if (key) notProto(v, what, argSpan(at, i));
  return v;
}

/** "__proto__" as an object key in generated code sets the prototype instead of a field. */
function notProto(name: string, what: string, span: SourceSpan): void {
  if (name !== "__proto__") return;
  fail("unsafe-name", `Cannot use "__proto__" as ${what}: in generated code it would set an object's prototype`, span, [
    { message: "Rename it" },
  ]);
}

function intList(args: Value[], i: number, fn: string, at: CallSite, min: number): number[] {
  const v = args[i];
  if (!Array.isArray(v)) badArg(at, fn, i, "an array of integers", v);
  return v.map((x, j) => {
    if (typeof x !== "number" || !Number.isInteger(x) || x < min || x > MAX_DIM) {
      fail(
        "bad-size",
        `Element ${j} of argument ${i + 1} of "${fn}" must be an integer ≥ ${min}, got ${describe(x)}`,
        argSpan(at, i),
      );
    }
    return x;
  });
}

function dimList(args: Value[], i: number, fn: string, at: CallSite): Dim[] {
  const v = args[i];
  if (!Array.isArray(v)) badArg(at, fn, i, "an array of dimensions", v);
  return v.map((x, j) => {
    if (x instanceof BatchSym) return "B";
    if (typeof x !== "number" || !Number.isInteger(x) || x < 1 || x > MAX_DIM) {
      fail("bad-size", `Dimension ${j} of "${fn}" must be a positive integer or B, got ${describe(x)}`, argSpan(at, i));
    }
    return x;
  });
}

function scheduleArg(args: Value[], i: number, fn: string, at: CallSite): number[] {
  const s = intList(args, i, fn, at, 1);
  if (s.length === 0) fail("bad-schedule", `The schedule of "${fn}" is empty`, argSpan(at, i));
  return s;
}

// ── the table ─────────────────────────────────────────────────────────────

type Table = { readonly [K in keyof typeof Lang]: Builtin | BatchSym };

/** Builds the builtins bound to one graph; `lang.ts` names map 1:1 onto this table. */
export function makeBuiltins(g: GraphBuilder): Table {
  const def = (name: string, impl: (args: Value[], at: CallSite) => Value) => new Builtin(name, impl);
  const unary = (name: string, fn: "silu" | "gelu_tanh" | "exp") =>
    def(name, (a, at) => g.add(Op.Unary, { fn }, [tensorArg(a, 0, name, at)], at.span));
  const binary = (name: string, fn: "add" | "sub" | "mul") =>
    def(name, (a, at) => g.add(Op.Binary, { fn }, [tensorArg(a, 0, name, at), tensorArg(a, 1, name, at)], at.span));
  const scalar = (name: string, fn: "mul" | "min" | "add") =>
    def(name, (a, at) => g.add(Op.Scalar, { fn, value: numArg(a, 1, name, at) }, [tensorArg(a, 0, name, at)], at.span));

  return {
    B: new BatchSym(),
    model: def("model", (a, at) => modelBuiltin(a, at)),
    input: def("input", (a, at) => {
      const name = strArg(a, 0, "input", at, IDENT, "an input name", true);
      const dtype = a[2] === undefined ? "f32" : a[2];
      if (dtype !== "f32" && dtype !== "i32") badArg(at, "input", 2, '"f32" or "i32"', dtype);
      return g.add(Op.Input, { name, dtype, shape: dimList(a, 1, "input", at) }, [], at.span);
    }),
    param: def("param", (a, at) => {
      const name = strArg(a, 0, "param", at, DOTTED, "a checkpoint tensor name");
      const source = a[2] === undefined ? "var" : a[2];
      if (source !== "var" && source !== "vae") badArg(at, "param", 2, '"var" or "vae"', source);
      const shape = intList(a, 1, "param", at, 1);
      return g.add(Op.Param, { name, shape, source: source as ParamSource }, [], at.span);
    }),
    tag: def("tag", (a, at) => {
      const t = tensorArg(a, 0, "tag", at);
      g.label(t, strArg(a, 1, "tag", at, DOTTED, "a tensor label", true));
      return t;
    }),
    range: def("range", (a, at) => {
      const n = intArg(a, 0, "range", at);
      if (n > MAX_ARRAY) fail("bad-size", `range(${n}) is longer than ${MAX_ARRAY} elements`, argSpan(at, 0));
      return Array.from({ length: n }, (_, i) => i);
    }),
    varConfig: def("varConfig", (a, at) => {
      const o = a[0];
      if (!(o instanceof ObjVal)) badArg(at, "varConfig", 0, "an object", o);
      return validateVarConfig(o, at.span);
    }),
    phiIndex: def("phiIndex", (a, at) => {
      const n = intArg(a, 0, "phiIndex", at, 1);
      if (n > MAX_ARRAY) fail("bad-size", `phiIndex(${n}) is longer than ${MAX_ARRAY} elements`, argSpan(at, 0));
      return phiIndexTable(n);
    }),
    blockCausal: def(
      "blockCausal",
      (a, at) => new MaskVal({ kind: "block_causal", schedule: scheduleArg(a, 0, "blockCausal", at) }),
    ),
    scaleWindow: def("scaleWindow", (a, at) =>
      new MaskVal({
        kind: "scale_window",
        schedule: scheduleArg(a, 0, "scaleWindow", at),
        window: intArg(a, 1, "scaleWindow", at, 1),
      })),
    levelIds: def(
      "levelIds",
      (a, at) => g.add(Op.LevelIds, { schedule: scheduleArg(a, 0, "levelIds", at) }, [], at.span),
    ),
    gather: def(
      "gather",
      (a, at) => g.add(Op.Gather, {}, [tensorArg(a, 0, "gather", at), tensorArg(a, 1, "gather", at)], at.span),
    ),
    linear: def("linear", (a, at) => {
      const ins = [tensorArg(a, 0, "linear", at), tensorArg(a, 1, "linear", at)];
      if (a[2] !== undefined) ins.push(tensorArg(a, 2, "linear", at));
      return g.add(Op.Linear, { bias: ins.length === 3, act: "none" }, ins, at.span);
    }),
    layerNorm: def(
      "layerNorm",
      (a, at) =>
        g.add(Op.LayerNorm, { eps: positive(a, 1, "layerNorm", at) }, [tensorArg(a, 0, "layerNorm", at)], at.span),
    ),
    l2Normalize: def(
      "l2Normalize",
      (a, at) =>
        g.add(
          Op.L2Normalize,
          { eps: positive(a, 1, "l2Normalize", at) },
          [tensorArg(a, 0, "l2Normalize", at)],
          at.span,
        ),
    ),
    silu: unary("silu", "silu"),
    geluTanh: unary("geluTanh", "gelu_tanh"),
    exp: unary("exp", "exp"),
    add: binary("add", "add"),
    sub: binary("sub", "sub"),
    mul: binary("mul", "mul"),
    scale: scalar("scale", "mul"),
    shift: scalar("shift", "add"),
    clamp: def("clamp", (a, at) => {
      const [lo, hi] = [numArg(a, 1, "clamp", at), numArg(a, 2, "clamp", at)];
      if (!(lo <= hi)) fail("bad-argument", `"clamp" needs lo ≤ hi, got ${lo} > ${hi}`, at.span);
      const low = g.add(Op.Scalar, { fn: "max", value: lo }, [tensorArg(a, 0, "clamp", at)], at.span);
      return g.add(Op.Scalar, { fn: "min", value: hi }, [low], at.span);
    }),
    groupNorm: def("groupNorm", (a, at) => {
      const ins = [0, 1, 2].map((i) => tensorArg(a, i, "groupNorm", at));
      const params = { groups: intArg(a, 3, "groupNorm", at, 1), eps: positive(a, 4, "groupNorm", at), silu: false };
      return g.add(Op.GroupNorm, params, ins, at.span);
    }),
    upsampleNearest: def(
      "upsampleNearest",
      (a, at) =>
        g.add(
          Op.Upsample,
          { factor: intArg(a, 1, "upsampleNearest", at, 1) },
          [tensorArg(a, 0, "upsampleNearest", at)],
          at.span,
        ),
    ),
    noMask: def("noMask", () => new MaskVal({ kind: "none" })),
    clampMax: scalar("clampMax", "min"),
    reshape: def(
      "reshape",
      (a, at) => g.add(Op.Reshape, { shape: dimList(a, 1, "reshape", at) }, [tensorArg(a, 0, "reshape", at)], at.span),
    ),
    permute: def(
      "permute",
      (a, at) =>
        g.add(Op.Permute, { perm: intList(a, 1, "permute", at, 0) }, [tensorArg(a, 0, "permute", at)], at.span),
    ),
    slice: def("slice", (a, at) => {
      const x = tensorArg(a, 0, "slice", at);
      const params = {
        axis: intArg(a, 1, "slice", at),
        start: intArg(a, 2, "slice", at),
        end: intArg(a, 3, "slice", at),
      };
      return g.add(Op.Slice, params, [x], at.span);
    }),
    concat: def("concat", (a, at) => {
      const xs = a[0];
      if (!Array.isArray(xs) || xs.length === 0) badArg(at, "concat", 0, "a non-empty array of tensors", xs);
      const ts = xs.map((x) => x instanceof TensorRef ? x : badArg(at, "concat", 0, "an array of tensors", x));
      return g.add(Op.Concat, { axis: intArg(a, 1, "concat", at) }, ts, at.span);
    }),
    attention: def("attention", (a, at) => {
      const ins = [0, 1, 2].map((i) => tensorArg(a, i, "attention", at));
      const o = a[3];
      if (!(o instanceof ObjVal)) badArg(at, "attention", 3, "an object { scale, mask }", o);
      const s = o.props.get("scale");
      const m = o.props.get("mask");
      if (typeof s !== "number" || !Number.isFinite(s)) {
        fail(
          "bad-argument",
          `"scale" of "attention" must be a finite number, got ${describe(s)}`,
          o.spans.get("scale") ?? argSpan(at, 3),
        );
      }
      if (!(m instanceof MaskVal)) {
        fail(
          "bad-argument",
          `"mask" of "attention" must be a mask (blockCausal, scaleWindow), got ${describe(m)}`,
          o.spans.get("mask") ?? argSpan(at, 3),
        );
      }
      return g.add(Op.Attention, { scale: s, mask: m.spec }, ins, at.span);
    }),
    conv2d: def("conv2d", (a, at) => {
      const ins = [0, 1, 2].map((i) => tensorArg(a, i, "conv2d", at));
      return g.add(Op.Conv2d, { padding: intArg(a, 3, "conv2d", at) }, ins, at.span);
    }),
    interpolate: def("interpolate", (a, at) => {
      const mode = a[2];
      if (mode !== "bicubic" && mode !== "area") badArg(at, "interpolate", 2, '"bicubic" or "area"', mode);
      return g.add(Op.Interpolate, { mode, size: intArg(a, 1, "interpolate", at, 1) }, [
        tensorArg(a, 0, "interpolate", at),
      ], at.span);
    }),
  };
}

function positive(args: Value[], i: number, fn: string, at: CallSite): number {
  const v = numArg(args, i, fn, at);
  if (!(v > 0)) fail("bad-argument", `Argument ${i + 1} of "${fn}" must be positive, got ${v}`, argSpan(at, i));
  return v;
}

/** Fields of the object `model()` takes. */
const MODEL_FIELDS = ["name", "entries", "outputs", "meta", "optionalWeights"];
/** At most this many `optionalWeights` patterns. */
const MAX_PATTERNS = 256;

function modelBuiltin(a: Value[], at: CallSite): ModelVal {
  const o = a[0];
  if (!(o instanceof ObjVal)) {
    badArg(at, "model", 0, "an object { name, entries | outputs, meta?, optionalWeights? }", o);
  }
  const field = (k: string) => o.spans.get(k) ?? at.span;
  for (const k of o.props.keys()) {
    if (!MODEL_FIELDS.includes(k)) {
      const near = closest(k, MODEL_FIELDS);
      fail("unknown-field", `Unknown field ${quote(k)} of "model"`, field(k), [
        { message: near ? `Did you mean "${near}"?` : `Known fields: ${MODEL_FIELDS.join(", ")}` },
      ]);
    }
  }
  const name = o.props.get("name");
  if (typeof name !== "string" || !IDENT.test(name)) {
    fail("unsafe-name", `Model name must be an identifier (${IDENT.source}), got ${describe(name)}`, field("name"));
  }
  const [outs, entriesVal] = [o.props.get("outputs"), o.props.get("entries")];
  if ((outs === undefined) === (entriesVal === undefined)) {
    fail(
      "missing-field",
      `"model" needs exactly one of "outputs" (one entry, "forward") or "entries"`,
      o.span ?? at.span,
    );
  }
  const entries = new Map<string, Map<string, TensorRef>>();
  if (outs !== undefined) entries.set("forward", outputsOf(outs, "outputs", field("outputs")));
  else {
    if (!(entriesVal instanceof ObjVal) || entriesVal.props.size === 0) {
      fail(
        "missing-field",
        `"entries" must be an object of entry points, got ${describe(entriesVal)}`,
        field("entries"),
      );
    }
    for (const [k, v] of entriesVal.props) {
      const span = entriesVal.spans.get(k) ?? field("entries");
      if (!IDENT.test(k)) fail("unsafe-name", `Entry name ${quote(k)} is not an identifier`, span);
      notProto(k, "an entry name", span);
      entries.set(k, outputsOf(v, `entry "${k}"`, span));
    }
  }
  const meta = o.props.get("meta") ?? new ObjVal(new Map(), undefined);
  if (!(meta instanceof ObjVal)) fail("bad-argument", `"meta" must be an object, got ${describe(meta)}`, field("meta"));
  const opt = o.props.get("optionalWeights") ?? [];
  if (!Array.isArray(opt) || !opt.every((p) => typeof p === "string")) {
    fail("bad-argument", `"optionalWeights" must be an array of strings`, field("optionalWeights"));
  }
  const long = (opt as string[]).find((p) => p.length > MAX_PATTERN_LENGTH);
  if (opt.length > MAX_PATTERNS || long !== undefined) {
    fail(
      "bad-argument",
      long !== undefined
        ? `An "optionalWeights" pattern is ${long.length} characters long, more than ${MAX_PATTERN_LENGTH}`
        : `"optionalWeights" has ${opt.length} patterns, more than ${MAX_PATTERNS}`,
      field("optionalWeights"),
      [{ message: "Patterns name checkpoint tensors: `*` matches one dotted segment, a final `*` the rest" }],
    );
  }
  return new ModelVal(name, entries, meta, opt as string[], at.span);
}

/** An object of named output tensors. */
function outputsOf(v: Value, what: string, span: SourceSpan): Map<string, TensorRef> {
  if (!(v instanceof ObjVal) || v.props.size === 0) {
    fail("missing-field", `${what} must be an object of output tensors, got ${describe(v)}`, span);
  }
  const outputs = new Map<string, TensorRef>();
  for (const [k, t] of v.props) {
    const at = v.spans.get(k) ?? span;
    if (!IDENT.test(k)) fail("unsafe-name", `Output name ${quote(k)} is not an identifier`, at);
    notProto(k, "an output name", at);
    if (!(t instanceof TensorRef)) fail("bad-argument", `Output "${k}" must be a tensor, got ${describe(t)}`, at);
    outputs.set(k, t);
  }
  return outputs;
}
