/** @file Text from files (names, headers, spec lines) made safe to print: the characters that must not reach a terminal raw. */

/** Control characters (C0, DEL, C1), line and paragraph separators, and bidirectional or invisible marks. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
export const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/;

const ALL = new RegExp(UNPRINTABLE.source, "g");

/** `text` with every UNPRINTABLE character but those in `keep` written as \uXXXX. */
export function escapeUnprintable(text: string, keep = ""): string {
  return text.replace(ALL, (c) => keep.includes(c) ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
