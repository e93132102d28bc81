/** @file Source spans of ts-morph nodes. */
import { relative } from "node:path";
import type { Node, SourceFile } from "ts-morph";
import type { SourceSpan } from "../diagnostics.ts";

/** Lines and display path of each source file, computed once (spans are made for every node). */
const fileInfo = new WeakMap<SourceFile, { lines: string[]; path: string }>();

/** `file:line:col` span of a node (file relative to the working directory when inside it). */
export function spanOf(node: Node): SourceSpan {
  const cached = spans.get(node.compilerNode);
  if (cached) return cached;
  const sf = node.getSourceFile();
  let info = fileInfo.get(sf);
  if (!info) {
    info = {
      lines: sf.getFullText().split("\n").map((l) => l.replace(/\r$/, "")),
      path: displayPath(sf.getFilePath()),
    };
    fileInfo.set(sf, info);
  }
  const start = node.getStart();
  const { line, column } = sf.getLineAndColumnAtPos(start);
  const span = {
    file: info.path,
    line,
    column,
    length: Math.max(1, node.getEnd() - start),
    lineText: info.lines[line - 1] ?? "",
  };
  spans.set(node.compilerNode, span);
  return span;
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
