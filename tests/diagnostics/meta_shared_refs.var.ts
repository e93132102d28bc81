/** Metadata made huge by shared references (a list holding the previous one twice, 25 times over). */
// @ts-nocheck: metadata this large is what the test is about
import { B, input, model, silu } from "../../compiler/dsl/lang.ts";

function nest(): unknown[] {
  let x: unknown[] = [1];
  for (let i = 0; i < 25; i++) x = [x, x];
  return x;
}

export default model({
  name: "meta_shared_refs",
  outputs: { y: silu(input("x", [B, 4])) },
  // expect-error 11 bad-argument: Model metadata is too large: more than 100000 values
  meta: { tree: nest() },
});
