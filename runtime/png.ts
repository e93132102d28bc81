/** @file Images to PNG files (encoder: npm fast-png). */
import { encode } from "fast-png";

/** Image `i` of img [B, 3, H, W] in [0, 1] as PNG bytes (values rounded to 8 bits, clamped). */
export function toPng(img: Float32Array, shape: readonly number[], i: number): Uint8Array {
  const [, c, h, w] = shape as [number, number, number, number];
  if (c !== 3) throw new RangeError(`Expected 3 colour channels, got ${c}`);
  const plane = h * w, base = i * 3 * plane;
  const rgb = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let ch = 0; ch < 3; ch++) {
      rgb[p * 3 + ch] = Math.round(Math.min(1, Math.max(0, img[base + ch * plane + p]!)) * 255);
    }
  }
  return encode({ width: w, height: h, data: rgb, channels: 3, depth: 8 });
}
