#!/usr/bin/env bash
# Creates data/fashion_mnist.h5 (splits /train and /test) from Debian's
# dataset-fashion-mnist package, using `shardtrain import-idx`.
# Assumes build/shardtrain exists (the quickstart builds first). Safe to re-run.
set -euo pipefail

# Paths below are relative to the project root, whatever the caller's directory.
cd "$(dirname "$0")/.."

out=data/fashion_mnist.h5
if [[ -e "$out" ]]; then
  echo "prepare-data: $out exists already; nothing to do"
  exit 0
fi

# Where the package put the gzipped IDX files; fall back to the usual location when dpkg
# is unavailable or lists nothing (e.g. files copied in by hand).
src=$(dpkg -L dataset-fashion-mnist 2>/dev/null \
        | grep -m1 '/train-images-idx3-ubyte.gz$' | xargs -r dirname || true)
src=${src:-/usr/share/datasets/fashion-mnist}
if [[ ! -f "$src/train-images-idx3-ubyte.gz" ]]; then
  echo "error: Fashion-MNIST IDX files not found in $src (apt-get install dataset-fashion-mnist)" >&2
  exit 1
fi

mkdir -p data
# Write into a temporary file beside the target and rename at the end: rename within one
# directory is atomic, so an interrupted run never leaves a half-written $out behind.
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
build/shardtrain import-idx --split train --out "$tmp" \
  --images "$src/train-images-idx3-ubyte.gz" --labels "$src/train-labels-idx1-ubyte.gz"
build/shardtrain import-idx --split test --out "$tmp" \
  --images "$src/t10k-images-idx3-ubyte.gz" --labels "$src/t10k-labels-idx1-ubyte.gz"
# ln (not mv) fails if $out appeared meanwhile, so an existing file is never replaced.
ln "$tmp" "$out"
echo "prepare-data: wrote $out"
