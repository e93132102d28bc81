/** Imports a Node module. */
import { B, input, model } from "../../compiler/dsl/lang.ts";
// expect-error 30 bad-import: Cannot import "node:fs"
import { readFileSync } from "node:fs";

export function load(): string {
  return readFileSync("weights.bin", "utf8");
}

export default model({ name: "bad_import", outputs: { y: input("x", [B, load().length]) } });
