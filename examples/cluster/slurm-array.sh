#!/usr/bin/env bash
# 50,000 images (50 for each of ImageNet's 1,000 classes) from VAR d16, in 64 shards: a Slurm job array
# of 64 tasks, one shard each (SLURM_ARRAY_TASK_ID), all running examples/cluster/sample.sh and writing
# into one folder on the cluster's shared file system. Submit from the repository root (on that file
# system, with deno on PATH: npm install --global deno@2.9.6):
#
#   sbatch examples/cluster/slurm-array.sh
#
# The shard is SLURM_ARRAY_TASK_ID of VARC_SHARDS (keep --array at 0 to VARC_SHARDS − 1). Shards that
# failed or ran out of --time resume when submitted again, all or some (finished images are verified and
# kept):
#   sbatch --array=5,17 examples/cluster/slurm-array.sh   # shards 5 and 17 of 64
# Afterwards: deno task varc pack /shared/varc/samples/d16 --out /shared/varc/samples/d16.npz
#SBATCH --job-name=varc-sample-d16
#SBATCH --array=0-63
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=24:00:00
#SBATCH --output=varc-sample-%A_%a.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}" # Slurm runs a copy of this script; the repository is where it was submitted

export VARC_SPEC=examples/var_d16.var.ts
export VARC_VAR=/shared/varc/weights/var_d16.safetensors
export VARC_VAE=/shared/varc/weights/vae_ch160v4096z32.safetensors
export VARC_OUT=/shared/varc/samples/d16
export VARC_PER_CLASS=50 VARC_SEED=0 VARC_CFG=1.5 VARC_TOP_K=900 VARC_TOP_P=0.96
export VARC_SHARDS=64 # as in --array=0-63

srun bash examples/cluster/sample.sh
