/**
 * @file Host side of the WebAssembly elementwise activations (elementwise_module.ts). The module
 * gets its own one-page, non-shared memory (independent of the GEMM's); arrays pass through it in
 * chunks of one page (16384 floats: copy in, compute in place, copy out, all within L2).
 * Single-threaded: the work is a few passes over memory plus about 40 SIMD instructions per 4
 * floats. Bundled copies of this file (one per compiled model) share the instance and the backend
 * choice through a global symbol, as the GEMM's runtime does.
 */
import { ELEMENTWISE_FNS, type ElementwiseFn, elementwiseModule } from "./elementwise_module.ts";

export type { ElementwiseFn } from "./elementwise_module.ts";

/** Which implementation `unary` uses: "auto" (WASM when available) or "js". */
export type ElementwiseBackend = "auto" | "js";

/** Arrays shorter than this stay in JS (per-call overhead; tiny tensors such as τ = exp(·) [1, H, 1, 1]). */
export const UNARY_WASM_MIN = 256;

const PAGES = 1;
/** Floats per module call: the whole memory. */
export const ELEMENTWISE_CHUNK = (PAGES * 65536) / 4;

interface Instance {
  readonly f32: Float32Array;
  readonly fns: Readonly<Record<ElementwiseFn, (p: number, n: number) => void>>;
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
    state.instance = { f32: new Float32Array(memory.buffer), fns };
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
