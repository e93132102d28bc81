/** A model with one tensor of 4 TB per batch row: refused at compile time. */
import { B, input, model, silu } from "../../compiler/dsl/lang.ts";

export default model({ name: "huge", outputs: { y: silu(input("x", [B, 1000000, 1000000])) } });
