#!/usr/bin/env bash
# Creates data/fortunes.h5 (byte-level token splits /train and /val) from Debian's
# fortunes package, using `shardtrain import-text`.
# Assumes build/shardtrain exists (the quickstart builds first). Safe to re-run.
set -euo pipefail

# Paths below are relative to the project root, whatever the caller's directory.
cd "$(dirname "$0")/.."

out=data/fortunes.h5
if [[ -e "$out" ]]; then
  echo "prepare-text: $out exists already; nothing to do"
  exit 0
fi

src=/usr/share/games/fortunes
# The plain-text fortune files only: -type f skips the *.u8 symlinks (aliases of the
# same files), and the *.dat files are strfile's binary indexes, not text. LC_ALL=C sort
# fixes the order, so every machine builds the same token stream.
mapfile -t inputs < <(find "$src" -maxdepth 1 -type f ! -name '*.dat' 2>/dev/null | LC_ALL=C sort)
if [[ ${#inputs[@]} -eq 0 ]]; then
  echo "error: no fortune files in $src (apt-get install fortunes)" >&2
  exit 1
fi

mkdir -p data
# import-text writes a temporary file beside $out and link()s it into place, so an
# interrupted run leaves no half-written $out and an existing one is never replaced.
build/shardtrain import-text --val-fraction 0.05 --out "$out" --input "${inputs[@]}"
echo "prepare-text: wrote $out from ${#inputs[@]} files in $src"
