/** A model with a 256 MiB tensor per batch row: fine on the js target, beyond a WebGPU storage binding. */
import { B, input, model, silu } from "../../compiler/dsl/lang.ts";

export default model({ name: "wide", outputs: { y: silu(input("x", [B, 8192, 8192])) } });
