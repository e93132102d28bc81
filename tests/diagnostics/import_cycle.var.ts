/** A spec that imports itself. */
import { B, input, model } from "../../compiler/dsl/lang.ts";
// expect-error 28 bad-import: cycle
import { width as w } from "./import_cycle.var.ts";

export const width = 4;

export default model({ name: "import_cycle", outputs: { y: input("x", [B, w]) } });
