/** @file The passes in the order they run. Read this file to know what the compiler does. */
import type { Pass } from "./pass.ts";
import { eliminateDeadCode } from "./passes/eliminate_dead_code.ts";
import { fuseActivations } from "./passes/fuse_activations.ts";
import { fuseHeads } from "./passes/fuse_heads.ts";
import { fuseModulation } from "./passes/fuse_modulation.ts";
import { fuseResidual } from "./passes/fuse_residual.ts";
import { inferShapes } from "./passes/infer_shapes.ts";
import { lowerAttention } from "./passes/lower_attention.ts";
import { mergeParams } from "./passes/merge_params.ts";
import { normBounds } from "./passes/norm_bounds.ts";
import { planMemory } from "./passes/plan_memory.ts";

/** The default pipeline; plugins insert passes relative to these names. */
export const defaultPipeline: readonly Pass[] = [
  inferShapes, // every node gets a dtype and shape; shape errors stop here
  mergeParams, // one node per checkpoint tensor; conflicting declarations are errors
  normBounds, // per attention node: the logit half-range β per head and where it comes from
  lowerAttention, // attention -> exact or low-rank kernels by bound and cost; low-rank state in steps
  fuseModulation, // h + h·s + b of a LayerNorm h (AdaLN) -> one modulated LayerNorm
  fuseResidual, // x + g·a (a gated residual) -> one three-input add
  fuseHeads, // slice, head split, L2 normalisation and per-head scale of q, k, v -> one Heads node
  fuseActivations, // silu(groupNorm(x)), silu|gelu(linear(x)) -> one node applying the activation
  eliminateDeadCode, // drop what no output needs (the merged duplicates, replaced KV caches)
  planMemory, // peak live bytes per entry and batch row; tensors that cannot fit are errors
];
