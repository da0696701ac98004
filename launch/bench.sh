#!/usr/bin/env bash
# Throughput benchmark: shardtrain's MLP and CNN next to PyTorch training the same model
# with the same global batch (128) and optimizer, in the same run. Steady state: the first
# 100 steps are warm-up and not timed.
#   CPU rows: np=1 and np=2 ranks vs PyTorch on CPU with the same total threads.
#   GPU rows (when nvidia-smi lists a GPU): one rank on device=cuda vs PyTorch on the same GPU.
#
#   ./launch/bench.sh [STEPS]        (default 400; needs build/ and data/, see README)
# Environment: ST_BENCH=cpu|gpu|all (default all), ST_TORCH_PYTHON (the Python with torch;
# default Debian's /usr/bin/python3), ST_BENCH_DATA (HDF5 file, or an .npz for a Python
# without h5py; default data/fashion_mnist.h5).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-400}
which=${ST_BENCH:-all}
torch_py=${ST_TORCH_PYTHON:-/usr/bin/python3}
bench_data=${ST_BENCH_DATA:-data/fashion_mnist.h5}
cores=$(nproc)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# Mean samples/s of shardtrain's logged intervals after step 100 (metrics.jsonl).
shardtrain_rate() {
  "$torch_py" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if "\"train\"" in l]
rows = [r for r in rows if r["step"] > 100]
print(sum(r["samples_per_s"] for r in rows) / len(rows))' "$1"
}

# row MODEL NP THREADS DEVICE: one shardtrain run and one PyTorch run, one table row.
row() {
  local model=$1 np=$2 threads=$3 device=$4 run="$tmp/$1-$2-$4"
  # No eval or checkpoint inside the timed window; log every 100 steps.
  mpirun -np "$np" --oversubscribe --bind-to none build/shardtrain train "configs/fashion_$model.pbtxt" \
    --run-dir "$run" --set train.steps="$steps" --set train.log_every=100 --set train.eval_every=0 \
    --set checkpoint.every=0 --set train.threads="$threads" --set device="$device" >"$run.log" 2>&1 \
    || { cat "$run.log"; exit 1; }
  local ours ref
  ours=$(shardtrain_rate "$run/metrics.jsonl")
  # PyTorch: one process with the same total thread count as all ranks together.
  ref=$("$torch_py" tests/reference/torch_bench.py "$model" --threads $(( threads * np )) --steps "$steps" \
        --device "$device" --data "$bench_data")
  "$torch_py" - "$model" "$np" "$threads" "$device" "$ours" "$ref" <<'PY'
import json, sys
model, np_, threads, device, ours, ref = *sys.argv[1:5], float(sys.argv[5]), json.loads(sys.argv[6])
batch = 128
print(f"{model:<5} {device:<5} {np_:<3} {threads:<8} {ours:14.0f} {1000*batch/ours:10.2f} "
      f"{ref['samples_per_s']:14.0f} {ref['step_ms']:10.2f} {ours/ref['samples_per_s']:8.2f}")
PY
}

printf "%-5s %-5s %-3s %-8s %14s %10s %14s %10s %8s\n" model dev np threads "shardtrain/s" "step ms" "pytorch/s" "step ms" ratio
if [[ $which != gpu ]]; then
  for model in mlp cnn; do
    for np in 1 2; do
      row "$model" "$np" $(( cores / np > 0 ? cores / np : 1 )) cpu
    done
  done
fi
if [[ $which != cpu ]]; then
  if nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    for model in mlp cnn; do row "$model" 1 1 cuda; done
  else
    echo "(no GPU: GPU rows skipped)"
  fi
fi
echo "ratio = shardtrain samples/s / PyTorch samples/s (higher is better for shardtrain); global batch 128"
