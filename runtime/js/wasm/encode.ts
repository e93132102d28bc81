/**
 * @file A small WebAssembly binary encoder: just the sections, types and opcodes the runtime's SIMD
 * kernels use. Kernels are written as TypeScript that emits instructions (`Fn` methods named after
 * the text-format mnemonics), so the module bytes are built at run time from readable source and no
 * external toolchain is needed.
 *
 * Every function takes i32 parameters and returns nothing; memory is imported as `env.mem`
 * (optionally shared, for the worker threads) and every function is exported under its name.
 */

/** Value types of locals. */
export const I32 = 0x7f, F32 = 0x7d, F64 = 0x7c, V128 = 0x7b;
type ValType = typeof I32 | typeof F32 | typeof F64 | typeof V128;

/** Unsigned LEB128. */
export function uleb(n: number, out: number[]): void {
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
}

/** Signed LEB128 of a 32-bit integer. */
function sleb(n: number, out: number[]): void {
  n |= 0;
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return void out.push(b);
    out.push(b | 0x80);
  }
}

function utf8(s: string, out: number[]): void {
  const b = new TextEncoder().encode(s);
  uleb(b.length, out);
  out.push(...b);
}

/** Prefix of the SIMD opcodes (each followed by its LEB128 sub-opcode). */
const SIMD = 0xfd;

/**
 * The body of one function. Parameters are locals 0..params-1; `local(type)` adds one. Control
 * instructions take callbacks for their bodies, so nesting follows the source.
 */
export class Fn {
  readonly code: number[] = [];
  readonly locals: ValType[] = [];

  constructor(readonly name: string, readonly params: number) {}

  /** A new local of the given type; returns its index. */
  local(type: ValType): number {
    this.locals.push(type);
    return this.params + this.locals.length - 1;
  }

  private simd(op: number): this {
    this.code.push(SIMD);
    uleb(op, this.code);
    return this;
  }

  private mem(op: number[], align: number, offset: number): this {
    this.code.push(...op);
    uleb(align, this.code);
    uleb(offset, this.code);
    return this;
  }

  // Control.
  /** `block … end`; `br 0` inside leaves it. */
  block(body: () => void): this {
    this.code.push(0x02, 0x40);
    body();
    this.code.push(0x0b);
    return this;
  }
  /** `loop … end`; `br 0` inside jumps back to the start. */
  loop(body: () => void): this {
    this.code.push(0x03, 0x40);
    body();
    this.code.push(0x0b);
    return this;
  }
  /** `if … else … end` on the i32 on the stack. */
  if(then: () => void, otherwise?: () => void): this {
    this.code.push(0x04, 0x40);
    then();
    if (otherwise) this.code.push(0x05), otherwise();
    this.code.push(0x0b);
    return this;
  }
  br(depth: number): this {
    this.code.push(0x0c);
    uleb(depth, this.code);
    return this;
  }
  br_if(depth: number): this {
    this.code.push(0x0d);
    uleb(depth, this.code);
    return this;
  }
  call(index: number): this {
    this.code.push(0x10);
    uleb(index, this.code);
    return this;
  }
  drop(): this {
    this.code.push(0x1a);
    return this;
  }
  select(): this {
    this.code.push(0x1b);
    return this;
  }

  /**
   * `for (i = from; i < to; i += step) body()` with i32 locals: `from`/`to` emit one i32 each.
   * The condition is checked before the first iteration; a null `from` continues from i's value.
   */
  for(i: number, from: (() => void) | null, to: () => void, step: number | (() => void), body: () => void): this {
    if (from) from(), this.local_set(i);
    return this.block(() =>
      this.loop(() => {
        this.local_get(i);
        to();
        this.i32_ge_s().br_if(1);
        body();
        this.local_get(i);
        if (typeof step === "number") this.i32_const(step);
        else step();
        this.i32_add().local_set(i).br(0);
      })
    );
  }

  // Locals.
  local_get(i: number): this {
    this.code.push(0x20);
    uleb(i, this.code);
    return this;
  }
  local_set(i: number): this {
    this.code.push(0x21);
    uleb(i, this.code);
    return this;
  }
  local_tee(i: number): this {
    this.code.push(0x22);
    uleb(i, this.code);
    return this;
  }

  // i32.
  i32_const(n: number): this {
    this.code.push(0x41);
    sleb(n, this.code);
    return this;
  }
  i32_eqz(): this {
    return this.code.push(0x45), this;
  }
  i32_eq(): this {
    return this.code.push(0x46), this;
  }
  i32_ne(): this {
    return this.code.push(0x47), this;
  }
  i32_lt_s(): this {
    return this.code.push(0x48), this;
  }
  i32_gt_s(): this {
    return this.code.push(0x4a), this;
  }
  i32_le_s(): this {
    return this.code.push(0x4c), this;
  }
  i32_ge_s(): this {
    return this.code.push(0x4e), this;
  }
  i32_ge_u(): this {
    return this.code.push(0x4f), this;
  }
  i32_add(): this {
    return this.code.push(0x6a), this;
  }
  i32_sub(): this {
    return this.code.push(0x6b), this;
  }
  i32_mul(): this {
    return this.code.push(0x6c), this;
  }
  i32_and(): this {
    return this.code.push(0x71), this;
  }
  i32_shl(): this {
    return this.code.push(0x74), this;
  }
  i32_shr_u(): this {
    return this.code.push(0x76), this;
  }
  i32_div_u(): this {
    return this.code.push(0x6e), this;
  }
  i32_rem_u(): this {
    return this.code.push(0x70), this;
  }

  // Atomics (threads proposal; naturally aligned i32 only).
  private atomic(op: number, offset: number): this {
    this.code.push(0xfe, op);
    uleb(2, this.code);
    uleb(offset, this.code);
    return this;
  }
  i32_atomic_load(offset = 0): this {
    return this.atomic(0x10, offset);
  }
  i32_atomic_store(offset = 0): this {
    return this.atomic(0x17, offset);
  }
  /** [addr, v] -> old value. */
  i32_atomic_rmw_add(offset = 0): this {
    return this.atomic(0x1e, offset);
  }
  /** [addr, expected, replacement] -> old value. */
  i32_atomic_rmw_cmpxchg(offset = 0): this {
    return this.atomic(0x48, offset);
  }
  /** [addr, count] -> woken waiters. */
  memory_atomic_notify(offset = 0): this {
    return this.atomic(0x00, offset);
  }
  i32_load(offset = 0): this {
    return this.mem([0x28], 2, offset);
  }

  // f32.
  f32_const(x: number): this {
    this.code.push(0x43);
    const b = new Uint8Array(new Float32Array([x]).buffer);
    this.code.push(...b);
    return this;
  }
  f32_load(offset = 0): this {
    return this.mem([0x2a], 2, offset);
  }
  f32_store(offset = 0): this {
    return this.mem([0x38], 2, offset);
  }
  f32_add(): this {
    return this.code.push(0x92), this;
  }
  f32_sub(): this {
    return this.code.push(0x93), this;
  }
  f32_mul(): this {
    return this.code.push(0x94), this;
  }
  f32_div(): this {
    return this.code.push(0x95), this;
  }
  f32_max(): this {
    return this.code.push(0x97), this;
  }
  f32_ne(): this {
    return this.code.push(0x5c), this;
  }

  // v128 / f32x4.
  v128_load(offset = 0): this {
    this.code.push(SIMD, 0x00);
    uleb(4, this.code);
    uleb(offset, this.code);
    return this;
  }
  v128_load32_splat(offset = 0): this {
    this.code.push(SIMD, 0x09);
    uleb(2, this.code);
    uleb(offset, this.code);
    return this;
  }
  v128_store(offset = 0): this {
    this.code.push(SIMD, 0x0b);
    uleb(4, this.code);
    uleb(offset, this.code);
    return this;
  }
  /** v128.const of four equal f32 lanes. */
  f32x4_const(x: number): this {
    this.code.push(SIMD, 0x0c);
    const b = new Uint8Array(new Float32Array([x, x, x, x]).buffer);
    this.code.push(...b);
    return this;
  }
  /** i8x16.shuffle with 4 f32 lane indices (0–3 first operand, 4–7 second). */
  f32x4_shuffle(l0: number, l1: number, l2: number, l3: number): this {
    this.code.push(SIMD, 0x0d);
    for (const l of [l0, l1, l2, l3]) this.code.push(4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3);
    return this;
  }
  f32x4_splat(): this {
    return this.simd(0x13);
  }
  f32x4_extract_lane(lane: number): this {
    this.simd(0x1f);
    this.code.push(lane);
    return this;
  }
  f32x4_add(): this {
    return this.simd(0xe4);
  }
  f32x4_sub(): this {
    return this.simd(0xe5);
  }
  f32x4_mul(): this {
    return this.simd(0xe6);
  }
  f32x4_div(): this {
    return this.simd(0xe7);
  }
  f32x4_max(): this {
    return this.simd(0xe9);
  }
  /** max(a, b) = a < b ? b : a (one instruction on x86; a NaN b is dropped). */
  f32x4_pmax(): this {
    return this.simd(0xeb);
  }
  f32x4_lt(): this {
    return this.simd(0x43);
  }
  /** a & ~b. */
  v128_andnot(): this {
    return this.simd(0x4f);
  }
  /** v128.const of four equal i32 lanes. */
  i32x4_const(x: number): this {
    this.code.push(SIMD, 0x0c);
    const b = new Uint8Array(new Int32Array([x, x, x, x]).buffer);
    this.code.push(...b);
    return this;
  }
  i32x4_add(): this {
    return this.simd(0xae);
  }
  /** [v128, i32 shift] -> v128. */
  i32x4_shl(): this {
    return this.simd(0xab);
  }
  /** min(a, b) = b < a ? b : a (one instruction on x86; a NaN b is dropped). */
  f32x4_pmin(): this {
    return this.simd(0xea);
  }
  i32x4_sub(): this {
    return this.simd(0xb1);
  }
  i32x4_shr_s(): this {
    return this.simd(0xac);
  }

  // f64 (float64 accumulation).
  f64_load(offset = 0): this {
    return this.mem([0x2b], 3, offset);
  }
  f64_store(offset = 0): this {
    return this.mem([0x39], 3, offset);
  }
  f64_add(): this {
    return this.code.push(0xa0), this;
  }
  f64_promote_f32(): this {
    return this.code.push(0xbb), this;
  }
  f64_convert_i32_s(): this {
    return this.code.push(0xb7), this;
  }
  f64x2_promote_low_f32x4(): this {
    return this.simd(0x5f);
  }
  f64x2_add(): this {
    return this.simd(0xf0);
  }
  f64x2_sub(): this {
    return this.simd(0xf1);
  }
  f64x2_mul(): this {
    return this.simd(0xf2);
  }
  f64x2_splat(): this {
    return this.simd(0x14);
  }
  f64x2_extract_lane(lane: number): this {
    this.simd(0x21);
    this.code.push(lane);
    return this;
  }
  /** [f64x2 a, b] -> f32x4 [a, b, 0, 0], each rounded to nearest. */
  f32x4_demote_f64x2_zero(): this {
    return this.simd(0x5e);
  }
  f64_sub(): this {
    return this.code.push(0xa1), this;
  }
  f64_mul(): this {
    return this.code.push(0xa2), this;
  }
  f64_div(): this {
    return this.code.push(0xa3), this;
  }
  f64_max(): this {
    return this.code.push(0xa5), this;
  }
  f64_sqrt(): this {
    return this.code.push(0x9f), this;
  }
  /** a·b + c (relaxed SIMD: fused or not, as the hardware prefers). */
  f32x4_relaxed_madd(): this {
    return this.simd(0x105);
  }

  /** Encoded body: local declarations (grouped by type) then code. */
  body(): number[] {
    const groups: [number, ValType][] = [];
    for (const t of this.locals) {
      const last = groups.at(-1);
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    const out: number[] = [];
    uleb(groups.length, out);
    for (const [n, t] of groups) uleb(n, out), out.push(t);
    out.push(...this.code, 0x0b);
    const sized: number[] = [];
    uleb(out.length, sized);
    return sized.concat(out);
  }
}

/** Memory import limits, in 64 KiB pages. */
export interface MemoryLimits {
  readonly initial: number;
  readonly maximum: number;
  readonly shared: boolean;
}

function section(id: number, content: number[], out: number[]): void {
  out.push(id);
  uleb(content.length, out);
  out.push(...content);
}

/** A module importing `env.mem` and exporting `fns` by name, in order (function i is `fns[i]`). */
export function encodeModule(fns: readonly Fn[], memory: MemoryLimits): Uint8Array<ArrayBuffer> {
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const arities = [...new Set(fns.map((f) => f.params))];
  const types: number[] = [];
  uleb(arities.length, types);
  for (const n of arities) {
    types.push(0x60);
    uleb(n, types);
    for (let i = 0; i < n; i++) types.push(I32);
    types.push(0x00);
  }
  section(1, types, out);
  const imports: number[] = [1];
  utf8("env", imports), utf8("mem", imports);
  imports.push(0x02, memory.shared ? 0x03 : 0x01);
  uleb(memory.initial, imports), uleb(memory.maximum, imports);
  section(2, imports, out);
  const funcs: number[] = [];
  uleb(fns.length, funcs);
  for (const f of fns) uleb(arities.indexOf(f.params), funcs);
  section(3, funcs, out);
  const exports: number[] = [];
  uleb(fns.length, exports);
  fns.forEach((f, i) => (utf8(f.name, exports), exports.push(0x00), uleb(i, exports)));
  section(7, exports, out);
  const code: number[] = [];
  uleb(fns.length, code);
  for (const f of fns) code.push(...f.body());
  section(10, code, out);
  return new Uint8Array(out);
}
