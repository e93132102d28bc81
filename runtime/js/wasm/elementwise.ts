/**
 * @file Host side of the WebAssembly elementwise activations (elementwise_module.ts) and row kernels
 * (rows_module.ts). The module gets its own small, non-shared memory (independent of the GEMM's);
 * arrays pass through it in chunks of 16384 floats (copy in, compute, copy out, all within L2).
 * Single-threaded: the work is a few passes over memory plus a few SIMD instructions per 4 floats,
 * where the JS loops spend several nanoseconds per float. Bundled copies of this file (one per
 * compiled model) share the instance and the backend choice through a global symbol, as the GEMM's
 * runtime does.
 */
import { ELEMENTWISE_FNS, type ElementwiseFn, elementwiseModule } from "./elementwise_module.ts";
import { ROW_FNS, ROWS, ROWS_CHUNK } from "./rows_module.ts";

export type { ElementwiseFn } from "./elementwise_module.ts";

/** Which implementation `unary` uses: "auto" (WASM when available) or "js". */
export type ElementwiseBackend = "auto" | "js";

/** Arrays shorter than this stay in JS (per-call overhead; tiny tensors such as τ = exp(·) [1, H, 1, 1]). */
export const UNARY_WASM_MIN = 256;

/** Pages of the module's memory: the row kernels' buffers. */
const PAGES = Math.ceil(ROWS.END / 65536);
/** Floats per activation call (from byte 0). */
export const ELEMENTWISE_CHUNK = 16384;

type RowFn = typeof ROW_FNS[number];

interface Instance {
  readonly f32: Float32Array;
  readonly f64: Float64Array;
  readonly fns: Readonly<Record<ElementwiseFn, (p: number, n: number) => void>>;
  readonly rows: Readonly<Record<RowFn, (...args: number[]) => void>>;
}

interface State {
  instance: Instance | null | undefined;
  backend: ElementwiseBackend;
}

const KEY = Symbol.for("varc.wasm.elementwise.v1");
const state: State = ((globalThis as Record<symbol, unknown>)[KEY] ??= {
  instance: undefined,
  backend: "auto",
}) as State;

/** Selects the backend of `unaryWasm` ("js" makes it decline, e.g. for tests and benchmarks). */
export function setElementwiseBackend(backend: ElementwiseBackend): void {
  state.backend = backend;
}

/** The implementation `unaryWasm` uses now. */
export function elementwiseBackend(): "wasm" | "js" {
  return state.backend === "auto" && init() ? "wasm" : "js";
}

/** Builds and instantiates the module once; null when WebAssembly SIMD is not available. */
function init(): Instance | null {
  if (state.instance !== undefined) return state.instance;
  state.instance = null;
  try {
    if (typeof WebAssembly !== "object") return null;
    const bytes = elementwiseModule(PAGES);
    if (!WebAssembly.validate(bytes)) return null;
    const memory = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES });
    const ex = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: memory } }).exports;
    const fns = Object.fromEntries(ELEMENTWISE_FNS.map((name) => [name, ex[name]])) as Instance["fns"];
    const rows = Object.fromEntries(ROW_FNS.map((name) => [name, ex[name]])) as Instance["rows"];
    state.instance = { f32: new Float32Array(memory.buffer), f64: new Float64Array(memory.buffer), fns, rows };
  } catch {
    state.instance = null;
  }
  return state.instance;
}

/**
 * out = fn(x) elementwise in WebAssembly (x and out may be the same array); false, with nothing
 * written, when WebAssembly SIMD is unavailable or the backend is "js".
 */
export function unaryWasm(x: Float32Array, fn: ElementwiseFn, out: Float32Array): boolean {
  if (state.backend !== "auto") return false;
  const m = init();
  if (!m) return false;
  const { f32 } = m, run = m.fns[fn];
  for (let i = 0; i < x.length; i += ELEMENTWISE_CHUNK) {
    const n = Math.min(ELEMENTWISE_CHUNK, x.length - i);
    f32.set(x.subarray(i, i + n));
    run(0, n);
    out.set(f32.subarray(0, n), i);
  }
  return true;
}

/** The instance when the backend is "auto" and WebAssembly SIMD is available, else null. */
const selected = (): Instance | null => state.backend === "auto" ? init() : null;

/**
 * `layerNorm` of the JS kernels (x of rows of C; with s and b, one row of each per T rows) in
 * WebAssembly, the same bits; false, with nothing written, when the backend is off or C is not a
 * multiple of 8 up to ROWS_CHUNK.
 */
export function layerNormWasm(
  x: Float32Array,
  C: number,
  eps: number,
  s: Float32Array | null,
  b: Float32Array | null,
  T: number,
  out: Float32Array,
): boolean {
  const m = selected();
  if (!m || C % 8 !== 0 || C > ROWS_CHUNK) return false;
  const { f32, rows: fn } = m, rows = x.length / C, per = Math.floor(ROWS_CHUNK / C), mod = s !== null && b !== null;
  m.f64[ROWS.EPS / 8] = eps;
  for (let r0 = 0, group = -1; r0 < rows;) {
    // rows [r0, r1): one chunk, within one modulation group (rows of T that share s and b)
    const g = mod ? Math.floor(r0 / T) : 0, r1 = Math.min(rows, r0 + per, mod ? (g + 1) * T : rows);
    if (mod && g !== group) {
      f32.set(s.subarray(g * C, g * C + C), ROWS.S / 4), f32.set(b.subarray(g * C, g * C + C), ROWS.B / 4);
      group = g;
    }
    f32.set(x.subarray(r0 * C, r1 * C), ROWS.X / 4);
    fn.ln_rows(ROWS.X, ROWS.O, mod ? ROWS.S : 0, ROWS.B, C, r1 - r0);
    out.set(f32.subarray(ROWS.O / 4, ROWS.O / 4 + (r1 - r0) * C), r0 * C);
    r0 = r1;
  }
  return true;
}

/**
 * `heads` of the JS kernels with eps (x [B·T, W] -> [B, H, T, D], each row of D normalised, then
 * times tau[h] when given) in WebAssembly, the same bits; false, with nothing written, when the
 * backend is off, D is not a multiple of 8 or H·D exceeds ROWS_CHUNK.
 */
export function headsWasm(
  x: Float32Array,
  rows: number,
  T: number,
  W: number,
  start: number,
  H: number,
  D: number,
  eps: number,
  tau: Float32Array | null,
  out: Float32Array,
): boolean {
  const m = selected(), HD = H * D;
  if (!m || D % 8 !== 0 || HD > ROWS_CHUNK || H > ROWS.MAX_TAU) return false;
  const { f32, rows: fn } = m, per = Math.floor(ROWS_CHUNK / HD);
  m.f64[ROWS.EPS / 8] = eps;
  if (tau) f32.set(tau.subarray(0, H), ROWS.TAU / 4);
  for (let b = 0; b < rows / T; b++) {
    for (let t0 = 0; t0 < T; t0 += per) {
      const n = Math.min(per, T - t0);
      for (let k = 0, from = (b * T + t0) * W + start; k < n; k++, from += W) {
        f32.set(x.subarray(from, from + HD), ROWS.X / 4 + k * HD);
      }
      fn.heads_l2(ROWS.X, ROWS.O, tau ? ROWS.TAU : 0, n, H, D);
      for (let h = 0; h < H; h++) {
        const at = ROWS.O / 4 + h * n * D;
        out.set(f32.subarray(at, at + n * D), ((b * H + h) * T + t0) * D);
      }
    }
  }
  return true;
}

/** Whether `addMulWasm` takes rows of `inner` floats: the backend is on and a row fits in a chunk. */
export const addMulRowsWasm = (inner: number): boolean => selected() !== null && inner <= ROWS_CHUNK;

/**
 * out[o + r·inner + j] = a[pa_r + j] + b[pb_r + j]·c[pc_r + j] for the rows r of `offsets` (pa, pb,
 * pc per row, as `addMul` walks them), the product rounded first, in WebAssembly; only where
 * `addMulRowsWasm(inner)` holds.
 */
export function addMulWasm(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  offsets: Int32Array,
  inner: number,
  out: Float32Array,
): void {
  const m = selected();
  if (!m || inner > ROWS_CHUNK) throw new Error(`addMulWasm: rows of ${inner} floats, where addMulRowsWasm is false`);
  const { f32, rows: fn } = m, rows = offsets.length / 3, per = Math.floor(ROWS_CHUNK / inner);
  for (let r0 = 0; r0 < rows; r0 += per) {
    const n = Math.min(per, rows - r0);
    for (let k = 0, r = r0 * 3; k < n; k++, r += 3) {
      const pa = offsets[r]!, pb = offsets[r + 1]!, pc = offsets[r + 2]!, at = k * inner;
      f32.set(a.subarray(pa, pa + inner), ROWS.X / 4 + at);
      f32.set(b.subarray(pb, pb + inner), ROWS.Y / 4 + at);
      f32.set(c.subarray(pc, pc + inner), ROWS.Z / 4 + at);
    }
    fn.add_mul(ROWS.X, ROWS.Y, ROWS.Z, ROWS.O, n * inner);
    out.set(f32.subarray(ROWS.O / 4, ROWS.O / 4 + n * inner), r0 * inner);
  }
}
