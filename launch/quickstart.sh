#!/usr/bin/env bash
# From a fresh Debian machine to a trained model:
#   installs dependencies, builds, imports Fashion-MNIST to HDF5, trains the CNN on 2 ranks,
#   then evaluates the final checkpoint. Re-running continues from the last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/install-deps.sh
./launch/build.sh
./launch/prepare-data.sh
# --resume auto: a second run (or a run after an interruption) continues where this left off.
./launch/mpirun.sh 2 train configs/fashion_cnn.pbtxt --run-dir runs/quickstart --resume auto
build/shardtrain eval configs/fashion_cnn.pbtxt --checkpoint runs/quickstart/checkpoints/latest
