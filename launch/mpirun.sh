#!/usr/bin/env bash
# Thin wrapper around mpirun for this project's machines:
#   ./launch/mpirun.sh NP shardtrain-args...
#   ./launch/mpirun.sh 2 train configs/fashion_mlp.pbtxt --run-dir runs/mlp
# Runs in the caller's working directory: relative paths in the arguments and in the
# config (data.path, --run-dir) mean what they mean where you typed the command.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
np=${1:?usage: launch/mpirun.sh NP ARGS...}; shift
[[ $np =~ ^[1-9][0-9]*$ ]] || { echo "usage: launch/mpirun.sh NP ARGS... (NP: a number of ranks, got '$np')" >&2; exit 2; }
source "$root/launch/env.sh"  # run-as-root for Open MPI, OpenBLAS's AVX2 kernels
# --oversubscribe: allow more ranks than cores (small machines, tests).
# --bind-to none: each rank sizes its own OpenMP/OpenBLAS pool (cores / ranks per node);
#   Open MPI's default core binding would pin a rank's threads to a single core.
exec mpirun -np "$np" --oversubscribe --bind-to none "$root/build/shardtrain" "$@"
