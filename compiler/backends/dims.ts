/** @file Size expressions of generated JS: static numbers folded, the batch size kept as `B`. */
import type { Dim } from "../ir/ops.ts";

/** Product of dims as a JS expression, constants folded: [B, 680, 128] -> "B * 87040". */
export function prod(dims: readonly Dim[]): string {
  const k = dims.reduce<number>((a, d) => (d === "B" ? a : a * d), 1);
  const b = dims.filter((d) => d === "B").length;
  const parts = [...Array<string>(b).fill("B"), ...(k !== 1 || b === 0 ? [String(k)] : [])];
  return parts.join(" * ");
}

/** A shape as a JS array literal: [B, 680, 256]. */
export function shapeLit(dims: readonly Dim[]): string {
  return `[${dims.join(", ")}]`;
}

/** Strides of `input` (right-aligned) over `out` for broadcasting: 0 where the input has size 1. */
export function broadcastStrides(input: readonly Dim[], out: readonly Dim[]): string[] {
  const offset = out.length - input.length;
  return out.map((d, i) => {
    const j = i - offset;
    if (j < 0 || (input[j] === 1 && d !== 1)) return "0";
    return prod(input.slice(j + 1));
  });
}
