/** A tiny model whose output overflows float32 for inputs above ~0.09: exp(1000·x). */
import { B, exp, input, model, scale, silu } from "../../compiler/dsl/lang.ts";

const x = input("x", [B, 4]);

export default model({ name: "overflow", outputs: { y: silu(exp(scale(x, 1000))) } });
