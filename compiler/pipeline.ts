/** @file The passes in the order they run. Read this file to know what the compiler does. */
import type { Pass } from "./pass.ts";
import { eliminateDeadCode } from "./passes/eliminate_dead_code.ts";
import { inferShapes } from "./passes/infer_shapes.ts";
import { mergeParams } from "./passes/merge_params.ts";

/** The default pipeline; plugins insert passes relative to these names. */
export const defaultPipeline: readonly Pass[] = [
  inferShapes, // every node gets a dtype and shape; shape errors stop here
  mergeParams, // one node per checkpoint tensor; conflicting declarations are errors
  eliminateDeadCode, // drop what no output or tap needs (and the merged duplicates)
];
