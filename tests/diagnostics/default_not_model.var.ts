/** The default export is not a model. */
import { B, input } from "../../compiler/dsl/lang.ts";

// expect-error 16 no-default-export: got a tensor
export default input("x", [B, 4]);
