/** @file Images to PNG files (encoder: npm fast-png). */
import { encode } from "fast-png";

/** Image `i` of img [B, 3, H, W] in [0, 1] as PNG bytes (values rounded to 8 bits, clamped). */
export function toPng(img: Float32Array, shape: readonly number[], i: number): Uint8Array {
  return gridPng([[{ img, shape, i }]]);
}

/**
 * A grid of images as one PNG: `cells[r][c]` is image `i` of img [B, 3, H, W] in [0, 1] (same H, W for
 * all), each drawn `zoom`× with nearest-neighbour pixels and `gap` pixels of `background` between cells.
 */
export function gridPng(
  cells: readonly (readonly { img: Float32Array; shape: readonly number[]; i: number }[])[],
  zoom = 1,
  gap = 0,
  background = 255,
): Uint8Array {
  const rows = cells.length, cols = Math.max(...cells.map((r) => r.length));
  const [, c, h, w] = cells[0]![0]!.shape as [number, number, number, number];
  if (c !== 3) throw new RangeError(`Expected 3 colour channels, got ${c}`);
  const ch = h * zoom, cw = w * zoom;
  const W = cols * cw + (cols + 1) * gap, H = rows * ch + (rows + 1) * gap;
  const rgb = new Uint8Array(W * H * 3).fill(background);
  cells.forEach((row, r) =>
    row.forEach(({ img, shape, i }, k) => {
      if (shape[2] !== h || shape[3] !== w) {
        throw new RangeError(`Cell ${r},${k} is ${shape[2]}×${shape[3]}, not ${h}×${w}`);
      }
      const plane = h * w, base = i * 3 * plane;
      const x0 = gap + k * (cw + gap), y0 = gap + r * (ch + gap);
      for (let y = 0; y < ch; y++) {
        for (let x = 0; x < cw; x++) {
          const p = ((y / zoom) | 0) * w + ((x / zoom) | 0), o = ((y0 + y) * W + x0 + x) * 3;
          for (let q = 0; q < 3; q++) {
            rgb[o + q] = Math.round(Math.min(1, Math.max(0, img[base + q * plane + p]!)) * 255);
          }
        }
      }
    })
  );
  return encode({ width: W, height: H, data: rgb, channels: 3, depth: 8 });
}
