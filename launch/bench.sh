#!/usr/bin/env bash
# Throughput benchmark: shardtrain's MLP and CNN at np=1 and np=2 next to PyTorch CPU
# (Debian's python3-torch) training the same model, same global batch, same total threads,
# in the same run. Steady state: the first 100 steps are warm-up and not timed.
#   ./launch/bench.sh [STEPS]        (default 400; needs build/ and data/, see README)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-400}
cores=$(nproc)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# Mean samples/s of shardtrain's logged intervals after step 100 (metrics.jsonl).
shardtrain_rate() {
  /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if "\"train\"" in l]
rows = [r for r in rows if r["step"] > 100]
print(sum(r["samples_per_s"] for r in rows) / len(rows))' "$1"
}

printf "%-5s %-3s %-8s %14s %10s %14s %10s %8s\n" model np threads "shardtrain/s" "step ms" "pytorch/s" "step ms" ratio
for model in mlp cnn; do
  for np in 1 2; do
    threads=$(( cores / np > 0 ? cores / np : 1 ))
    run="$tmp/$model-$np"
    # No eval or checkpoint inside the timed window; log every 100 steps.
    mpirun -np "$np" --oversubscribe --bind-to none build/shardtrain train "configs/fashion_$model.pbtxt" \
      --run-dir "$run" --set train.steps="$steps" --set train.log_every=100 --set train.eval_every=0 \
      --set checkpoint.every=0 --set train.threads="$threads" >"$run.log" 2>&1 || { cat "$run.log"; exit 1; }
    ours=$(shardtrain_rate "$run/metrics.jsonl")
    # PyTorch: one process with the same total thread count as all ranks together.
    ref=$(/usr/bin/python3 tests/reference/torch_bench.py "$model" --threads $(( threads * np )) --steps "$steps")
    /usr/bin/python3 - "$model" "$np" "$threads" "$ours" "$ref" <<'PY'
import json, sys
model, np_, threads, ours, ref = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), json.loads(sys.argv[5])
batch = 128
print(f"{model:<5} {np_:<3} {threads:<8} {ours:14.0f} {1000*batch/ours:10.2f} {ref['samples_per_s']:14.0f} "
      f"{ref['step_ms']:10.2f} {ours/ref['samples_per_s']:8.2f}")
PY
  done
done
echo "ratio = shardtrain samples/s / PyTorch samples/s (higher is better for shardtrain); global batch 128"
