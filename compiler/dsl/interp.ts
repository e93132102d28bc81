/** @file A small evaluator for the DSL subset of TypeScript: builds IR by reading the spec, never running it. */
import {
  type BinaryExpression,
  type CallExpression,
  type Expression,
  Node as TsNode,
  type Statement,
  SyntaxKind,
  type VariableDeclaration,
} from "ts-morph";
import type { SourceSpan } from "../diagnostics.ts";
import { Env } from "./env.ts";
import { spanOf } from "./spans.ts";
import {
  BatchSym,
  Builtin,
  type CallSite,
  closest,
  Closure,
  describe,
  fail,
  MaskVal,
  ObjVal,
  SpecError,
  TensorRef,
  type Value,
} from "./values.ts";

/** Limits that keep reading a spec bounded in time and stack. */
export const LIMITS = { steps: 5_000_000, depth: 200, nesting: 400, arrayLength: 1 << 20, stringLength: 1 << 20 };

type Completion = { value: Value } | undefined;

/** Evaluates expressions and statements of one compile; shares a step budget and call stack. */
export class Evaluator {
  #steps = 0;
  #nesting = 0;
  readonly #stack: { name: string; span: SourceSpan }[] = [];

  /** Call sites of the functions being evaluated, outermost first. */
  trace(): SourceSpan[] {
    return this.#stack.map((f) => f.span);
  }

  /** Counts one evaluation step; fails past the budget. */
  tick(node: TsNode): void {
    this.charge(1, spanOf(node));
  }

  /** Counts `n` steps of work (elements a builtin touches count one each); fails past the budget. */
  charge(n: number, span: SourceSpan): void {
    if ((this.#steps += n) > LIMITS.steps) {
      fail("eval-budget", `Reading the spec took more than ${LIMITS.steps} steps`, span, [
        { message: "Loops in specs must be bounded by sizes such as depth or the schedule length" },
      ]);
    }
  }

  /** Evaluates an expression (nesting bounded, so hostile input cannot overflow the stack). */
  expr(e: Expression, env: Env): Value {
    this.tick(e);
    if (++this.#nesting > LIMITS.nesting) {
      this.#nesting = 0;
      fail("nesting-limit", `Expressions nest deeper than ${LIMITS.nesting} levels`, spanOf(e), [
        { message: "Split the expression into named consts" },
      ]);
    }
    try {
      return this.#expr(e, env);
    } finally {
      this.#nesting = Math.max(0, this.#nesting - 1);
    }
  }

  #expr(e: Expression, env: Env): Value {
    if (TsNode.isNumericLiteral(e)) return numericValue(e);
    if (TsNode.isStringLiteral(e) || TsNode.isNoSubstitutionTemplateLiteral(e)) return e.getLiteralValue();
    if (TsNode.isTemplateExpression(e)) return this.#template(e, env);
    switch (e.getKind()) {
      case SyntaxKind.TrueKeyword:
        return true;
      case SyntaxKind.FalseKeyword:
        return false;
      case SyntaxKind.NullKeyword:
        return null;
    }
    if (TsNode.isIdentifier(e)) return this.#name(e.getText(), e, env);
    if (
      TsNode.isParenthesizedExpression(e) || TsNode.isAsExpression(e) || TsNode.isNonNullExpression(e) ||
      TsNode.isSatisfiesExpression(e) || TsNode.isTypeAssertion(e)
    ) return this.expr(e.getExpression(), env);
    if (TsNode.isArrayLiteralExpression(e)) return this.#array(e.getElements(), env);
    if (TsNode.isObjectLiteralExpression(e)) return this.#object(e, env);
    if (TsNode.isPropertyAccessExpression(e)) {
      const obj = this.expr(e.getExpression(), env);
      if ((obj === undefined || obj === null) && e.hasQuestionDotToken()) return undefined;
      return this.#property(obj, e.getName(), e);
    }
    if (TsNode.isElementAccessExpression(e)) return this.#element(e, env);
    if (TsNode.isCallExpression(e)) return this.#call(e, env);
    if (TsNode.isArrowFunction(e) || TsNode.isFunctionExpression(e)) {
      return new Closure(TsNode.isFunctionExpression(e) ? e.getName() ?? "(function)" : "(arrow)", e, env);
    }
    if (TsNode.isConditionalExpression(e)) {
      return truthy(this.expr(e.getCondition(), env))
        ? this.expr(e.getWhenTrue(), env)
        : this.expr(e.getWhenFalse(), env);
    }
    if (TsNode.isBinaryExpression(e)) return this.#binary(e, env);
    if (TsNode.isPrefixUnaryExpression(e)) return this.#prefix(e.getOperatorToken(), e.getOperand(), env, e);
    if (TsNode.isPostfixUnaryExpression(e)) {
      return this.#update(e.getOperand(), e.getOperatorToken() === SyntaxKind.PlusPlusToken ? 1 : -1, env, true);
    }
    return unsupported(e);
  }

  #template(e: Expression & TsNode, env: Env): string {
    const t = e.asKindOrThrow(SyntaxKind.TemplateExpression);
    let s = t.getHead().getLiteralText();
    for (const span of t.getTemplateSpans()) {
      const v = this.expr(span.getExpression(), env);
      if (typeof v !== "number" && typeof v !== "string") {
        fail("bad-operand", `Cannot put ${describe(v)} in a template string`, spanOf(span.getExpression()));
      }
      s += String(v) + span.getLiteral().getLiteralText();
      checkString(s, e);
      this.charge(s.length >> 6, spanOf(span)); // text copied, in 64-character steps
    }
    return s;
  }

  #name(name: string, node: TsNode, env: Env): Value {
    if (name === "undefined") return undefined;
    const b = env.lookup(name);
    if (b) return b.value;
    const near = closest(name, env.names());
    fail("unknown-name", `Unknown name "${name}"`, spanOf(node), [{
      message: near
        ? `Did you mean "${near}"? Specs see only their own declarations and DSL imports`
        : "Specs see only their own declarations and DSL imports",
    }]);
  }

  #array(elements: readonly Expression[], env: Env): Value[] {
    const out: Value[] = [];
    for (const el of elements) {
      if (TsNode.isSpreadElement(el)) {
        const v = this.expr(el.getExpression(), env);
        if (!Array.isArray(v)) fail("bad-operand", `Cannot spread ${describe(v)} into an array`, spanOf(el));
        checkLength(out.length + v.length, el);
        this.charge(v.length, spanOf(el));
        for (const x of v) out.push(x); // not push(...v): a long spread overflows the stack
      } else out.push(this.expr(el, env));
    }
    if (out.length > LIMITS.arrayLength) checkLength(out.length, elements[0]!);
    return out;
  }

  #object(e: TsNode, env: Env): ObjVal {
    const o = e.asKindOrThrow(SyntaxKind.ObjectLiteralExpression);
    const obj = new ObjVal(new Map(), spanOf(o));
    for (const p of o.getProperties()) {
      if (TsNode.isPropertyAssignment(p)) {
        const key = this.#key(p.getNameNode(), env);
        obj.props.set(key, this.expr(p.getInitializerOrThrow(), env));
        obj.spans.set(key, spanOf(p));
      } else if (TsNode.isShorthandPropertyAssignment(p)) {
        obj.props.set(p.getName(), this.#name(p.getName(), p, env));
        obj.spans.set(p.getName(), spanOf(p));
      } else if (TsNode.isSpreadAssignment(p)) {
        const v = this.expr(p.getExpression(), env);
        if (!(v instanceof ObjVal)) fail("bad-operand", `Cannot spread ${describe(v)} into an object`, spanOf(p));
        for (const [k, x] of v.props) {
          obj.props.set(k, x);
          const s = v.spans.get(k);
          if (s) obj.spans.set(k, s);
        }
      } else unsupported(p);
    }
    return obj;
  }

  #key(n: TsNode, env: Env): string {
    if (!TsNode.isComputedPropertyName(n)) return propertyKey(n);
    const k = this.expr(n.getExpression(), env);
    if (typeof k !== "string" && typeof k !== "number") {
      fail("bad-operand", `Cannot use ${describe(k)} as a property name`, spanOf(n));
    }
    return String(k);
  }

  #property(obj: Value, name: string, node: TsNode): Value {
    if (obj instanceof ObjVal) return obj.props.get(name);
    if (Array.isArray(obj) || typeof obj === "string") {
      if (name === "length") return obj.length;
      const method = Array.isArray(obj) ? arrayMethod(obj, name, this) : undefined;
      if (method) return method;
    }
    if (obj instanceof MaskVal && name === "kind") return obj.spec.kind;
    fail("bad-operand", `Cannot read "${name}" of ${describe(obj)}`, spanOf(node));
  }

  #element(e: TsNode, env: Env): Value {
    const el = e.asKindOrThrow(SyntaxKind.ElementAccessExpression);
    const obj = this.expr(el.getExpression(), env);
    const key = this.expr(el.getArgumentExpressionOrThrow(), env);
    if (Array.isArray(obj) && typeof key === "number") return obj[key];
    if (obj instanceof ObjVal && typeof key === "string") return obj.props.get(key);
    fail("bad-operand", `Cannot index ${describe(obj)} with ${describe(key)}`, spanOf(el));
  }

  #call(e: CallExpression, env: Env): Value {
    const callee = e.getExpression();
    if (TsNode.isIdentifier(callee) && !env.lookup(callee.getText())) {
      const near = closest(callee.getText(), env.names());
      fail("unknown-op", `Unknown op "${callee.getText()}"`, spanOf(callee), [{
        message: near
          ? `Did you mean "${near}"? Ops come from compiler/dsl/lang.ts`
          : "Ops come from compiler/dsl/lang.ts (import them)",
      }]);
    }
    const fn = this.expr(callee, env);
    const argNodes = e.getArguments() as Expression[];
    const args = this.#array(argNodes, env);
    if (!(fn instanceof Closure) && !(fn instanceof Builtin)) {
      const name = callee.getText();
      if (fn === undefined && TsNode.isIdentifier(callee)) fail("unknown-op", `Unknown op "${name}"`, spanOf(callee));
      fail("unknown-op", `Cannot call ${describe(fn)} ("${name}")`, spanOf(callee));
    }
    return this.apply(fn, args, spanOf(e), argNodes.map((a) => spanOf(a)));
  }

  /** Calls a closure or builtin, recording the call for "called from" notes. */
  apply(fn: Closure | Builtin, args: Value[], span: SourceSpan, argSpans: readonly SourceSpan[] = []): Value {
    if (this.#stack.length >= LIMITS.depth) {
      const culprit = mostFrequent(this.#stack.map((f) => f.name));
      const at = this.#stack.findLast((f) => f.name === culprit)!.span;
      fail("recursion-limit", `Calls nest deeper than ${LIMITS.depth} (is "${culprit}" recursive?)`, at, [
        { message: "Specs may recurse only to a depth bounded by their sizes" },
      ]);
    }
    this.#stack.push({ name: fn.name, span });
    try {
      if (fn instanceof Builtin) {
        const site: CallSite = {
          span,
          argSpans,
          call: (f, a) => {
            if (!(f instanceof Closure) && !(f instanceof Builtin)) {
              fail("bad-argument", `Expected a function, got ${describe(f)}`, span);
            }
            return this.apply(f, a, span);
          },
        };
        const out = fn.impl(args, site);
        // Builtins that build arrays or strings (range, slice, …) touch every element: charge them.
        if (Array.isArray(out) || typeof out === "string") this.charge(out.length, span);
        return out;
      }
      return this.#callClosure(fn, args, span);
    } catch (err) {
      throw err instanceof SpecError ? withCallNote(err, fn.name, span) : err;
    } finally {
      this.#stack.pop();
    }
  }

  #callClosure(fn: Closure, args: Value[], span: SourceSpan): Value {
    const scope = new Env(fn.env);
    fn.node.getParameters().forEach((p, i) => {
      if (p.isRestParameter()) unsupported(p);
      let v = args[i];
      const init = p.getInitializer();
      if (v === undefined && init) v = this.expr(init, scope);
      this.bindPattern(p.getNameNode(), v, scope, true);
    });
    const body = fn.node.getBody();
    if (body === undefined) fail("unsupported-syntax", `Function "${fn.name}" has no body`, span);
    if (TsNode.isBlock(body)) return this.block(body.getStatements(), scope)?.value;
    return this.expr(body as Expression, scope);
  }

  /** Binds a name or an array/object destructuring pattern (with defaults and `...rest`). */
  bindPattern(name: TsNode, v: Value, env: Env, mutable: boolean): void {
    if (TsNode.isIdentifier(name)) return env.define(name.getText(), v, mutable, spanOf(name));
    if (TsNode.isArrayBindingPattern(name)) {
      if (!Array.isArray(v)) fail("bad-operand", `Cannot destructure ${describe(v)} as an array`, spanOf(name));
      name.getElements().forEach((el, i) => {
        if (!TsNode.isBindingElement(el)) return;
        const item = el.getDotDotDotToken() ? v.slice(i) : v[i];
        this.bindPattern(el.getNameNode(), this.#orDefault(item, el, env), env, mutable);
      });
      return;
    }
    if (TsNode.isObjectBindingPattern(name)) {
      if (!(v instanceof ObjVal)) fail("bad-operand", `Cannot destructure ${describe(v)} as an object`, spanOf(name));
      const taken = new Set<string>();
      for (const el of name.getElements()) {
        if (el.getDotDotDotToken()) {
          const rest = new ObjVal(new Map([...v.props].filter(([k]) => !taken.has(k))), v.span, v.spans);
          this.bindPattern(el.getNameNode(), rest, env, mutable);
          continue;
        }
        const prop = el.getPropertyNameNode();
        const key = prop ? this.#key(prop, env) : el.getName();
        taken.add(key);
        this.bindPattern(el.getNameNode(), this.#orDefault(v.props.get(key), el, env), env, mutable);
      }
      return;
    }
    unsupported(name);
  }

  /** A destructured value, or the element's default (`{ a = 1 }`) when it is undefined. */
  #orDefault(v: Value, el: TsNode, env: Env): Value {
    const init = el.asKindOrThrow(SyntaxKind.BindingElement).getInitializer();
    return v === undefined && init ? this.expr(init, env) : v;
  }

  /** Runs statements; returns a completion when a `return` ran. */
  block(statements: readonly Statement[], env: Env): Completion {
    for (const s of statements) {
      const c = this.statement(s, env);
      if (c) return c;
    }
    return undefined;
  }

  /** Runs one statement inside a function body. */
  statement(s: Statement, env: Env): Completion {
    this.tick(s);
    if (TsNode.isVariableStatement(s)) {
      const mutable = s.getDeclarationKind() !== "const";
      for (const d of s.getDeclarations()) this.declare(d, env, mutable);
      return undefined;
    }
    if (TsNode.isReturnStatement(s)) {
      const e = s.getExpression();
      return { value: e ? this.expr(e, env) : undefined };
    }
    if (TsNode.isExpressionStatement(s)) {
      this.expr(s.getExpression(), env);
      return undefined;
    }
    if (TsNode.isIfStatement(s)) {
      const branch = truthy(this.expr(s.getExpression(), env)) ? s.getThenStatement() : s.getElseStatement();
      return branch ? this.statement(branch, new Env(env)) : undefined;
    }
    if (TsNode.isBlock(s)) return this.block(s.getStatements(), new Env(env));
    if (TsNode.isForStatement(s)) return this.#for(s, env);
    if (TsNode.isForOfStatement(s)) return this.#forOf(s, env);
    if (TsNode.isFunctionDeclaration(s)) {
      env.define(s.getName() ?? "(anonymous)", new Closure(s.getName() ?? "(anonymous)", s, env), false, spanOf(s));
      return undefined;
    }
    if (TsNode.isEmptyStatement(s) || TsNode.isTypeAliasDeclaration(s) || TsNode.isInterfaceDeclaration(s)) {
      return undefined;
    }
    return unsupported(s);
  }

  /** `const x = …` / `let x = …`. */
  declare(d: VariableDeclaration, env: Env, mutable: boolean): void {
    const init = d.getInitializer();
    const v = init ? this.expr(init, env) : undefined;
    this.bindPattern(d.getNameNode(), v, env, mutable);
  }

  #for(s: TsNode, env: Env): Completion {
    const f = s.asKindOrThrow(SyntaxKind.ForStatement);
    const scope = new Env(env);
    const init = f.getInitializer();
    if (init && TsNode.isVariableDeclarationList(init)) {
      for (const d of init.getDeclarations()) this.declare(d, scope, true);
    } else if (init) this.expr(init as Expression, scope);
    for (;;) {
      const cond = f.getCondition();
      if (cond && !truthy(this.expr(cond, scope))) return undefined;
      const c = this.statement(f.getStatement(), new Env(scope));
      if (c) return c;
      const inc = f.getIncrementor();
      if (inc) this.expr(inc, scope);
    }
  }

  #forOf(s: TsNode, env: Env): Completion {
    const f = s.asKindOrThrow(SyntaxKind.ForOfStatement);
    const items = this.expr(f.getExpression(), env);
    if (!Array.isArray(items)) fail("bad-operand", `Cannot iterate over ${describe(items)}`, spanOf(f.getExpression()));
    const decl = f.getInitializer();
    if (!TsNode.isVariableDeclarationList(decl)) return unsupported(decl);
    for (const item of [...items]) {
      const scope = new Env(env);
      this.bindPattern(decl.getDeclarations()[0]!.getNameNode(), item, scope, false);
      const c = this.statement(f.getStatement(), scope);
      if (c) return c;
    }
    return undefined;
  }

  #binary(e: BinaryExpression, env: Env): Value {
    const op = e.getOperatorToken().getKind();
    const left = e.getLeft();
    switch (op) {
      case SyntaxKind.EqualsToken:
        return this.#assign(left, this.expr(e.getRight(), env), env);
      case SyntaxKind.PlusEqualsToken:
      case SyntaxKind.MinusEqualsToken:
      case SyntaxKind.AsteriskEqualsToken: {
        const base = op === SyntaxKind.PlusEqualsToken
          ? SyntaxKind.PlusToken
          : op === SyntaxKind.MinusEqualsToken
          ? SyntaxKind.MinusToken
          : SyntaxKind.AsteriskToken;
        return this.#assign(left, arith(base, this.expr(left, env), this.expr(e.getRight(), env), e), env);
      }
      case SyntaxKind.AmpersandAmpersandToken: {
        const l = this.expr(left, env);
        return truthy(l) ? this.expr(e.getRight(), env) : l;
      }
      case SyntaxKind.BarBarToken: {
        const l = this.expr(left, env);
        return truthy(l) ? l : this.expr(e.getRight(), env);
      }
      case SyntaxKind.QuestionQuestionToken: {
        const l = this.expr(left, env);
        return l === undefined || l === null ? this.expr(e.getRight(), env) : l;
      }
    }
    return arith(op, this.expr(left, env), this.expr(e.getRight(), env), e);
  }

  #assign(target: Expression, v: Value, env: Env): Value {
    if (!TsNode.isIdentifier(target)) {
      fail("unsupported-syntax", "Only local variables can be assigned in specs", spanOf(target), [
        { message: "Build a new object or array instead of changing one" },
      ]);
    }
    const b = env.lookup(target.getText());
    if (!b) this.#name(target.getText(), target, env);
    if (!b!.mutable) fail("bad-operand", `Cannot assign to constant "${target.getText()}"`, spanOf(target));
    b!.value = v;
    return v;
  }

  #update(operand: Expression, delta: number, env: Env, postfix: boolean): Value {
    const old = this.expr(operand, env);
    if (typeof old !== "number") fail("bad-operand", `Cannot increment ${describe(old)}`, spanOf(operand));
    this.#assign(operand, old + delta, env);
    return postfix ? old : old + delta;
  }

  #prefix(op: SyntaxKind, operand: Expression, env: Env, node: TsNode): Value {
    if (op === SyntaxKind.PlusPlusToken || op === SyntaxKind.MinusMinusToken) {
      return this.#update(operand, op === SyntaxKind.PlusPlusToken ? 1 : -1, env, false);
    }
    const v = this.expr(operand, env);
    if (op === SyntaxKind.ExclamationToken) return !truthy(v);
    if (typeof v !== "number") fail("bad-operand", `Cannot apply unary operator to ${describe(v)}`, spanOf(node));
    if (op === SyntaxKind.MinusToken) return -v;
    if (op === SyntaxKind.PlusToken) return v;
    return unsupported(node);
  }
}

/** Arrays longer than LIMITS.arrayLength are refused where they are built. */
function checkLength(n: number, node: TsNode): void {
  if (n > LIMITS.arrayLength) {
    fail("bad-size", `Array of ${n} elements is too large (limit ${LIMITS.arrayLength})`, spanOf(node));
  }
}

/** Strings longer than LIMITS.stringLength are refused where they are built (concatenation, templates). */
function checkString(s: string, node: TsNode): string {
  if (s.length > LIMITS.stringLength) {
    fail("bad-size", `String of ${s.length} characters is too long (limit ${LIMITS.stringLength})`, spanOf(node), [
      { message: "Strings in specs are names and labels; build them from bounded pieces" },
    ]);
  }
  return s;
}

function truthy(v: Value): boolean {
  if (v instanceof TensorRef || v instanceof BatchSym || typeof v === "object" && v !== null) return true;
  return Boolean(v);
}

function arith(op: SyntaxKind, a: Value, b: Value, node: TsNode): Value {
  if (op === SyntaxKind.EqualsEqualsEqualsToken || op === SyntaxKind.EqualsEqualsToken) return a === b;
  if (op === SyntaxKind.ExclamationEqualsEqualsToken || op === SyntaxKind.ExclamationEqualsToken) return a !== b;
  if (op === SyntaxKind.PlusToken && (typeof a === "string" || typeof b === "string")) {
    if ((typeof a === "string" || typeof a === "number") && (typeof b === "string" || typeof b === "number")) {
      return checkString(`${a}${b}`, node);
    }
  }
  if (typeof a !== "number" || typeof b !== "number") {
    const hint = a instanceof TensorRef || b instanceof TensorRef
      ? [{ message: "Use add/sub/mul/scale for tensors" }]
      : [];
    fail(
      "bad-operand",
      `Cannot apply "${SyntaxKindText(op)}" to ${describe(a)} and ${describe(b)}`,
      spanOf(node),
      hint,
    );
  }
  switch (op) {
    case SyntaxKind.PlusToken:
      return a + b;
    case SyntaxKind.MinusToken:
      return a - b;
    case SyntaxKind.AsteriskToken:
      return a * b;
    case SyntaxKind.SlashToken:
      return a / b;
    case SyntaxKind.PercentToken:
      return a % b;
    case SyntaxKind.AsteriskAsteriskToken:
      return a ** b;
    case SyntaxKind.LessThanToken:
      return a < b;
    case SyntaxKind.LessThanEqualsToken:
      return a <= b;
    case SyntaxKind.GreaterThanToken:
      return a > b;
    case SyntaxKind.GreaterThanEqualsToken:
      return a >= b;
  }
  return unsupported(node);
}

function SyntaxKindText(op: SyntaxKind): string {
  const texts: Partial<Record<SyntaxKind, string>> = {
    [SyntaxKind.PlusToken]: "+",
    [SyntaxKind.MinusToken]: "-",
    [SyntaxKind.AsteriskToken]: "*",
    [SyntaxKind.SlashToken]: "/",
    [SyntaxKind.PercentToken]: "%",
    [SyntaxKind.LessThanToken]: "<",
    [SyntaxKind.GreaterThanToken]: ">",
  };
  return texts[op] ?? SyntaxKind[op];
}

function arrayMethod(arr: Value[], name: string, ev: Evaluator): Builtin | undefined {
  const fnArg = (f: Value, at: CallSite) => {
    if (!(f instanceof Closure) && !(f instanceof Builtin)) {
      fail("bad-argument", `"${name}" needs a function, got ${describe(f)}`, at.span);
    }
    return f;
  };
  switch (name) {
    case "map":
      return new Builtin("map", ([f], at) => arr.map((x, i) => ev.apply(fnArg(f, at), [x, i], at.span)));
    case "push":
      return new Builtin("push", (xs, at) => {
        if (arr.length + xs.length > LIMITS.arrayLength) {
          fail(
            "bad-size",
            `Array of ${arr.length + xs.length} elements is too large (limit ${LIMITS.arrayLength})`,
            at.span,
          );
        }
        for (const x of xs) arr.push(x);
        return arr.length;
      });
    case "slice":
      return new Builtin("slice", ([a, b]) => arr.slice(a as number | undefined, b as number | undefined));
    case "at":
      return new Builtin("at", ([i]) => arr.at(i as number));
    case "includes":
      return new Builtin("includes", ([x], at) => (ev.charge(arr.length, at.span), arr.includes(x)));
    case "reduce":
      return new Builtin("reduce", (args, at) => {
        const f = fnArg(args[0], at);
        const step = (acc: Value, x: Value, i: number) => ev.apply(f, [acc, x, i], at.span);
        if (args.length >= 2) return arr.reduce<Value>(step, args[1]);
        if (arr.length === 0) fail("bad-operand", "Cannot reduce an empty array without an initial value", at.span);
        return arr.reduce(step);
      });
  }
  return undefined;
}

function propertyKey(n: TsNode): string {
  if (TsNode.isIdentifier(n)) return n.getText();
  if (TsNode.isStringLiteral(n)) return n.getLiteralValue();
  if (TsNode.isNumericLiteral(n)) return String(numericValue(n));
  return unsupported(n);
}

/**
 * The value of a numeric literal. TypeScript keeps it as canonical JS text ("1e-12", "16" for 0x10);
 * ts-morph's getLiteralValue() would parseInt text without a ".", reading 1e-12 as 1 and 1e308 as 1.
 */
function numericValue(n: TsNode): number {
  return Number(n.asKindOrThrow(SyntaxKind.NumericLiteral).compilerNode.text);
}

function unsupported(n: TsNode): never {
  fail("unsupported-syntax", `Specs cannot use ${n.getKindName()} here`, spanOf(n), [
    { message: "Specs are a declarative subset of TypeScript: consts, functions, loops over sizes, DSL calls" },
  ]);
}

function withCallNote(err: SpecError, name: string, span: SourceSpan): SpecError {
  const note = { message: `in "${name}" called from here`, span };
  return new SpecError(
    err.diagnostics.map((d) => d.notes.length < 6 && !sameSpan(d.span, span) ? { ...d, notes: [...d.notes, note] } : d),
  );
}

function mostFrequent(names: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  return [...counts].reduce((a, b) => (b[1] > a[1] ? b : a))[0];
}

function sameSpan(a: SourceSpan | undefined, b: SourceSpan): boolean {
  return a !== undefined && a.file === b.file && a.line === b.line && a.column === b.column;
}
