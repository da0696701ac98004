#!/usr/bin/env bash
# Installs dependencies, builds from scratch-or-incrementally, prepares the data (images
# and text) and runs
# every test (unit, MPI, end-to-end, PyTorch reference) with ctest. CI calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/install-deps.sh
./launch/build.sh
./launch/prepare-data.sh
./launch/prepare-text.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd build
ctest --output-on-failure --timeout 600 "$@"
