#!/usr/bin/env bash
# The one command every shard runs, on Kubernetes (indexed-job.yaml) and on Slurm (slurm-array.sh):
# `varc sample` with the settings below. The engine says which shard this process is:
# JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID (Slurm array) is its shard, of
# VARC_SHARDS (the Job's completions, the array's size). Every shard writes into VARC_OUT, a folder on
# storage they all share; running a shard again resumes it.
set -euo pipefail
cd "$(dirname "$0")/../.."   # the repository root: cli/varc.ts and the specs are relative to it

: "${VARC_SPEC:?the model spec, e.g. examples/var_d16.var.ts}"
: "${VARC_VAR:?the VAR checkpoint (safetensors)}"
: "${VARC_VAE:?the VQ-VAE checkpoint (safetensors)}"
: "${VARC_OUT:?the shared output folder}"
: "${VARC_PER_CLASS:?images per class, e.g. 50}"

args=(sample "$VARC_SPEC" --var "$VARC_VAR" --vae "$VARC_VAE" --out "$VARC_OUT" --per-class "$VARC_PER_CLASS")
args+=(--seed "${VARC_SEED:-0}" --cfg "${VARC_CFG:-1.5}" --top-p "${VARC_TOP_P:-0.96}")
if [[ -n "${VARC_TOP_K:-}" ]]; then args+=(--top-k "$VARC_TOP_K"); fi        # default: 900, at most the vocabulary
if [[ -n "${VARC_CLASSES:-}" ]]; then args+=(--classes "$VARC_CLASSES"); fi   # default: every class
if [[ -n "${VARC_BATCH:-}" ]]; then args+=(--batch "$VARC_BATCH"); fi         # default: the memory plan's
if [[ -n "${VARC_SHARDS:-}" ]]; then args+=(--shards "$VARC_SHARDS"); fi
exec deno run -A cli/varc.ts "${args[@]}" "$@"
