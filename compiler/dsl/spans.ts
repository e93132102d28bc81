/** @file Source spans of ts-morph nodes. */
import { relative } from "node:path";
import type { Node, SourceFile } from "ts-morph";
import type { SourceSpan } from "../diagnostics.ts";

/** Lines, line start offsets and display path of each source file, computed once (spans are made for every node). */
const fileInfo = new WeakMap<SourceFile, { lines: string[]; starts: number[]; path: string }>();

/** `file:line:col` span of a node (file relative to the working directory when inside it). */
export function spanOf(node: Node): SourceSpan {
  const cached = spans.get(node.compilerNode);
  if (cached) return cached;
  const sf = node.getSourceFile();
  let info = fileInfo.get(sf);
  if (!info) {
    const text = sf.getFullText();
    info = {
      lines: text.split("\n").map((l) => l.replace(/\r$/, "")),
      starts: lineStarts(text),
      path: displayPath(sf.getFilePath()),
    };
    fileInfo.set(sf, info);
  }
  const start = node.getStart();
  // Binary search for the line (ts-morph's own lookup scans the text from the start: quadratic over a file).
  let lo = 0, hi = info.starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (info.starts[mid]! <= start) lo = mid;
    else hi = mid - 1;
  }
  const span = {
    file: info.path,
    line: lo + 1,
    column: start - info.starts[lo]! + 1,
    length: Math.max(1, node.getEnd() - start),
    lineText: info.lines[lo] ?? "",
  };
  spans.set(node.compilerNode, span);
  return span;
}

/** Offsets where each line starts (lines end at "\n", as in diagnostics and `spanAt`). */
function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  return starts;
}

/** Spans by syntax node: loops and entry points evaluate the same calls many times. */
const spans = new WeakMap<object, SourceSpan>();

/** Span at a character offset of a file's text. */
export function spanAt(file: string, text: string, pos: number, length = 1): SourceSpan {
  const before = text.slice(0, pos).split("\n");
  const line = before.length;
  const lineText = text.split("\n")[line - 1]?.replace(/\r$/, "") ?? "";
  return { file: displayPath(file), line, column: before.at(-1)!.length + 1, length, lineText };
}

function displayPath(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel.startsWith("..") ? path : rel;
}
