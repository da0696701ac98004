#!/usr/bin/env bash
# Thin wrapper around mpirun for this project's machines:
#   ./launch/mpirun.sh NP shardtrain-args...
#   ./launch/mpirun.sh 2 train configs/fashion_mlp.pbtxt --run-dir runs/mlp
set -euo pipefail
cd "$(dirname "$0")/.."
np=${1:?usage: launch/mpirun.sh NP ARGS...}; shift
source launch/env.sh  # run-as-root for Open MPI, OpenBLAS's AVX2 kernels
# --oversubscribe: allow more ranks than cores (small machines, tests).
# --bind-to none: each rank sizes its own OpenMP/OpenBLAS pool (cores / ranks per node);
#   Open MPI's default core binding would pin a rank's threads to a single core.
exec mpirun -np "$np" --oversubscribe --bind-to none build/shardtrain "$@"
