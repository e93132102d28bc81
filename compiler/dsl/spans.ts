/** @file Source spans of ts-morph nodes. */
import { relative } from "node:path";
import type { Node } from "ts-morph";
import type { SourceSpan } from "../diagnostics.ts";

/** `file:line:col` span of a node (file relative to the working directory when inside it). */
export function spanOf(node: Node): SourceSpan {
  const sf = node.getSourceFile();
  const start = node.getStart();
  const { line, column } = sf.getLineAndColumnAtPos(start);
  const lineText = sf.getFullText().split("\n")[line - 1]?.replace(/\r$/, "") ?? "";
  return { file: displayPath(sf.getFilePath()), line, column, length: Math.max(1, node.getEnd() - start), lineText };
}

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
