/**
 * @file WebAssembly convolutions (conv.ts) against float64 references, with error bounds derived per
 * output, and the resident memory they read weights from.
 *
 * u = 2⁻²⁴. GEMM paths (1×1 direct, im2col): a float32 sum of K = Ci·kh·kw products in MR-row
 * panels (one accumulator per output, K blocks added into it) plus the bias: |got − y| ≤
 * (K + 4)·u·(Σ|w||x| + |b|), plus u·|y| for rounding the float64 reference.
 *
 * Winograd F(2×2, 3×3): y = Σ_ci Σ_ξ a_ξ U_ξ V_ξ + b with U = G g Gᵀ (float32: two levels of up to
 * two adds per side, the halvings exact, so error ≤ 4u·(|G||g||G|ᵀ)_ξ), V = Bᵀ d B (one add/sub per
 * side: error ≤ 2u·(|B|ᵀ|d||B|)_ξ), the product (u), the sum over ci in float32 (γ_{Ci}), then Aᵀ M A
 * (two levels of two adds each: 4u, |a_ξ| ≤ 1) and the bias (u). So |got − y| ≤ (Ci + 13)·u·Σ_ci
 * Σ_ξ |a_ξ|·(|G||g||G|ᵀ)_ξ·(|B|ᵀ|d||B|)_ξ + u·|b| + u·|y|, the bound computed below for every output.
 *
 * Winograd F(4×4, 3×3), the same sum over 36 points: U computed in float64 and rounded once (u);
 * V = Bᵀ d B with every term rounded at most twice per side (4u; the factors 2 and 4 are exact, 5 is
 * rounded once); the product (u); the sum over ci (γ_{Ci}); Aᵀ M A with every term rounded at most
 * three times on the first side and four on the second, bias included (7u). So |got − y| ≤
 * (Ci + 14)·u·Σ_ci Σ_ξ |a_ξ|·(|G||g||G|ᵀ)_ξ·(|B|ᵀ|d||B|)_ξ + u·|b| + u·|y| (one u of margin for
 * second-order terms, as above).
 */
import assert from "node:assert/strict";
import { randomF32 } from "../../random.ts";
import { conv2dWasm, winogradTile } from "./conv.ts";
import { reserve, residentAt, residentBytes, residentCopy, scratchBase, wasmRuntime } from "./gemm.ts";

const U = 2 ** -24;

/** A copy of a in the resident memory (as checkpoint tensors are loaded). */
function resident(a: Float32Array): Float32Array {
  const view = residentCopy(a);
  assert.ok(view, "resident memory available");
  return view;
}

/** Float64 convolution and, per output, Σ|w||x| + |b|. */
function reference(
  x: Float32Array,
  B: number,
  Ci: number,
  H: number,
  W: number,
  w: Float32Array,
  Co: number,
  k: number,
  b: Float32Array,
  pad: number,
): { y: Float64Array; mag: Float64Array } {
  const Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1;
  const y = new Float64Array(B * Co * Ho * Wo), mag = new Float64Array(y.length);
  for (let n = 0; n < B; n++) {
    for (let co = 0; co < Co; co++) {
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          let s = b[co]!, m = Math.abs(b[co]!);
          for (let ci = 0; ci < Ci; ci++) {
            for (let dy = 0; dy < k; dy++) {
              const iy = oy + dy - pad;
              if (iy < 0 || iy >= H) continue;
              for (let dx = 0; dx < k; dx++) {
                const ix = ox + dx - pad;
                if (ix < 0 || ix >= W) continue;
                const p = w[((co * Ci + ci) * k + dy) * k + dx]! * x[((n * Ci + ci) * H + iy) * W + ix]!;
                s += p, m += Math.abs(p);
              }
            }
          }
          const o = ((n * Co + co) * Ho + oy) * Wo + ox;
          y[o] = s, mag[o] = m;
        }
      }
    }
  }
  return { y, mag };
}

/** |G|, |Bᵀ| and |Aᵀ| of F(2×2, 3×3) and F(4×4, 3×3), by output tile side. */
const ABS_MATRICES = {
  2: {
    G: [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0, 0, 1]],
    Bt: [[1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 0, 1]],
    At: [[1, 1, 1, 0], [0, 1, 1, 1]],
  },
  4: {
    G: [[1 / 4, 0, 0], [1 / 6, 1 / 6, 1 / 6], [1 / 6, 1 / 6, 1 / 6], [1 / 24, 1 / 12, 1 / 6], [1 / 24, 1 / 12, 1 / 6], [
      0,
      0,
      1,
    ]],
    Bt: [[4, 0, 5, 0, 1, 0], [0, 4, 4, 1, 1, 0], [0, 4, 4, 1, 1, 0], [0, 2, 1, 2, 1, 0], [0, 2, 1, 2, 1, 0], [
      0,
      4,
      0,
      5,
      0,
      1,
    ]],
    At: [[1, 1, 1, 1, 1, 0], [0, 1, 1, 2, 2, 0], [0, 1, 1, 4, 4, 0], [0, 1, 1, 8, 8, 1]],
  },
} as const;

/** The Winograd F(m×m, 3×3) magnitude Σ_ci Σ_ξ |a_ξ|(|G||g||G|ᵀ)_ξ(|B|ᵀ|d||B|)_ξ for every output. */
function winogradMagnitude(
  x: Float32Array,
  B: number,
  Ci: number,
  H: number,
  W: number,
  w: Float32Array,
  Co: number,
  m: 2 | 4,
): Float64Array {
  const { G, Bt, At } = ABS_MATRICES[m], n = m + 2; // patch side
  const out = new Float64Array(B * Co * H * W);
  const absU = (co: number, ci: number) => {
    const u = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let a = 0; a < 3; a++) {
          for (let c = 0; c < 3; c++) s += G[i]![a]! * Math.abs(w[((co * Ci + ci) * 3 + a) * 3 + c]!) * G[j]![c]!;
        }
        u[n * i + j] = s;
      }
    }
    return u;
  };
  const us = Array.from({ length: Co * Ci }, (_, i) => absU(Math.floor(i / Ci), i % Ci));
  for (let b = 0; b < B; b++) {
    for (let ty = 0; ty < H / m; ty++) {
      for (let tx = 0; tx < W / m; tx++) {
        for (let ci = 0; ci < Ci; ci++) {
          const d = (r: number, c: number) => {
            const iy = m * ty + r - 1, ix = m * tx + c - 1;
            return iy < 0 || iy >= H || ix < 0 || ix >= W ? 0 : Math.abs(x[((b * Ci + ci) * H + iy) * W + ix]!);
          };
          const v = new Float64Array(n * n);
          for (let i = 0; i < n; i++) {
            for (let j = 0; j < n; j++) {
              let s = 0;
              for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) s += Bt[i]![r]! * d(r, c) * Bt[j]![c]!;
              v[n * i + j] = s;
            }
          }
          for (let co = 0; co < Co; co++) {
            const u = us[co * Ci + ci]!;
            for (let r = 0; r < m; r++) {
              for (let c = 0; c < m; c++) {
                let s = 0;
                for (let i = 0; i < n; i++) {
                  for (let j = 0; j < n; j++) s += At[r]![i]! * At[c]![j]! * u[n * i + j]! * v[n * i + j]!;
                }
                out[((b * Co + co) * H + m * ty + r) * W + m * tx + c]! += s;
              }
            }
          }
        }
      }
    }
  }
  return out;
}

function check(what: string, got: Float32Array, y: Float64Array, bound: (i: number) => number): number {
  assert.equal(got.length, y.length, `${what}: length`);
  let worst = 0;
  for (let i = 0; i < y.length; i++) {
    const err = Math.abs(got[i]! - y[i]!), b = bound(i) + U * Math.abs(y[i]!) + 1e-30;
    if (!(err <= b)) assert.fail(`${what}: output ${i} = ${got[i]} vs ${y[i]}: error ${err} > bound ${b}`);
    worst = Math.max(worst, err / b);
  }
  return worst;
}

/** Fills the first 8 MiB of the WASM scratch area with NaN, as stale values of earlier kernels. */
function poisonScratch(): void {
  const rt = wasmRuntime()!, at = scratchBase(rt), bytes = 8 * 2 ** 20;
  assert.ok(reserve(rt, at + bytes));
  rt.f32.fill(NaN, at / 4, (at + bytes) / 4);
}

Deno.test("WASM conv: Winograd F(2×2, 3×3) and F(4×4, 3×3) within their derived bounds (odd channels, bias, batch 2)", () => {
  // [B, Ci, H, W, Co, m]: F(4×4) where H is a multiple of 4, W of 16 and there are ≥ 64 tiles, else F(2×2)
  const cases = [
    [1, 3, 8, 8, 5, 2],
    [2, 7, 6, 16, 3, 2],
    [1, 16, 16, 8, 20, 2],
    [1, 33, 10, 24, 9, 2],
    [2, 48, 18, 24, 24, 2], // ≥ 2²⁰ multiply-adds: padding and bands on all threads, per image
    [1, 3, 16, 16, 5, 2],
    [1, 5, 24, 48, 7, 4], // 72 tiles: a last band of 8, the GEMMs' columns rounded up to them
    [2, 48, 32, 32, 24, 4], // ≥ 2²⁰ multiply-adds: two bands, split by output channels too
    [1, 3, 16, 64, 5, 4],
    [2, 7, 8, 128, 3, 4],
    [1, 16, 32, 32, 20, 4],
    [1, 33, 16, 80, 9, 4],
    [2, 24, 16, 64, 10, 4],
  ] as const;
  let seed = 500;
  for (const [B, Ci, H, W, Co, m] of cases) {
    assert.equal(winogradTile(H, W), m);
    const x = randomF32(B * Ci * H * W, seed++), b = randomF32(Co, seed++);
    const plain = randomF32(Co * Ci * 9, seed++, 0.3);
    const { y } = reference(x, B, Ci, H, W, plain, Co, 3, b, 1);
    const mag = winogradMagnitude(x, B, Ci, H, W, plain, Co, m);
    const k = m === 2 ? 13 : 14;
    const bound = (i: number) => (Ci + k) * U * mag[i]! + U * Math.abs(b[Math.floor(i / (H * W)) % Co]!);
    // plain weights (U packed per call), then resident ones (U packed once and cached), twice, the
    // second time with x resident too (padded from where it is, not staged)
    const runs = [[plain, x], [resident(plain), x], [resident(plain), resident(x)]] as const;
    for (const [w, input] of runs) {
      const out = new Float32Array(B * Co * H * W).fill(NaN);
      poisonScratch(); // the padded input's zeros must be written, not found
      assert.ok(conv2dWasm(input, B, Ci, H, W, w, Co, 3, 3, b, 1, out), "WASM path taken");
      check(`winograd F(${m}×${m}) ${[B, Ci, H, W, Co]}`, out, y, bound);
    }
  }
});

Deno.test("WASM conv: 1×1 and im2col paths within the float32 dot-product bound", () => {
  // [B, Ci, H, W, Co, k, pad]
  const cases = [[1, 16, 9, 7, 6, 1, 0], [2, 5, 7, 9, 10, 3, 1], [1, 4, 6, 10, 3, 3, 0], [1, 8, 12, 12, 7, 5, 2]];
  let seed = 600;
  for (const [B, Ci, H, W, Co, k, pad] of cases as [number, number, number, number, number, number, number][]) {
    const x = randomF32(B * Ci * H * W, seed++), b = randomF32(Co, seed++);
    const w = resident(randomF32(Co * Ci * k * k, seed++, 0.3));
    const { y, mag } = reference(x, B, Ci, H, W, w, Co, k, b, pad);
    const out = new Float32Array(y.length).fill(NaN);
    assert.ok(conv2dWasm(x, B, Ci, H, W, w, Co, k, k, b, pad, out), "WASM path taken");
    check(`conv ${[B, Ci, H, W, Co, k, pad]}`, out, y, (i) => (Ci * k * k + 4) * U * mag[i]!);
  }
});

Deno.test("resident memory: allocations are distinct and writable, ordinary arrays are not resident", () => {
  const rt = wasmRuntime()!;
  const a = residentBytes(1000)!, b = residentBytes(3000)!;
  assert.ok(residentAt(rt, a) >= 0 && residentAt(rt, b) >= 0);
  assert.ok(b.byteOffset >= a.byteOffset + 1000 || a.byteOffset >= b.byteOffset + 3000, "no overlap");
  assert.equal(residentAt(rt, new Float32Array(4)), -1, "ordinary arrays are not resident");
  a.fill(7), b.fill(9);
  assert.ok(a.every((v) => v === 7) && b.every((v) => v === 9));
});
