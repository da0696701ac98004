#!/usr/bin/env bash
# Configures and builds shardtrain into build/ (Release). Extra args go to cmake,
# e.g. ./launch/build.sh -DSHARDTRAIN_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
# The CUDA toolkit lives in /usr/local/cuda without always being on PATH; CMake's CUDA
# check only looks on PATH and CUDACXX, so point it there (SHARDTRAIN_CUDA then defaults ON).
if ! command -v nvcc >/dev/null && [[ -z ${CUDACXX:-} && -x /usr/local/cuda/bin/nvcc ]]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
cmake -S . -B build -G Ninja "$@" >/dev/null
# Two jobs per core would thrash the 2-core machines this runs on: ninja's default is fine.
ninja -C build
