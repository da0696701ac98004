#!/usr/bin/env bash
# Configures and builds shardtrain into build/ (Release). Extra args go to cmake,
# e.g. ./launch/build.sh -DSHARDTRAIN_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja "$@" >/dev/null
# Two jobs per core would thrash the 2-core machines this runs on: ninja's default is fine.
ninja -C build
