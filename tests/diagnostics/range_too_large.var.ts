/** A range far larger than any array a spec may build. */
import { B, input, model, range } from "../../compiler/dsl/lang.ts";

// expect-error 26 bad-size: range
export const ids = range(2 ** 30);

export default model({ name: "range_too_large", outputs: { y: input("x", [B, ids.length]) } });
