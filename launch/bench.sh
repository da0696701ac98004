#!/usr/bin/env bash
# Throughput benchmark: shardtrain next to PyTorch training the same model with the same
# batch and optimizer, in the same run.
#   MLP and CNN (global batch 128): the first 100 of STEPS are warm-up, not timed.
#     CPU rows: np=1 and np=2 ranks vs PyTorch on CPU with the same total threads.
#     GPU rows (when nvidia-smi lists a GPU): one rank on device=cuda vs PyTorch there.
#   GPT: configs/gpt_tiny.pbtxt on CPU (np=1, np=2) vs PyTorch's identical model with the
#     same threads, tokens/s; on a GPU, configs/gpt2_124m.pbtxt (bf16) vs PyTorch (bf16,
#     scaled_dot_product_attention) eager and, where available, torch.compile, tokens/s
#     and MFU. GPT_STEPS steps each, the first third not timed.
#
#   ./launch/bench.sh [STEPS [GPT_STEPS]]  (defaults 400 and 60; needs build/ and data/)
# Environment: ST_BENCH=cpu|gpu|all (default all), ST_TORCH_PYTHON (the Python with torch;
# default Debian's /usr/bin/python3), ST_BENCH_DATA (HDF5 file, or an .npz for a Python
# without h5py; default data/fashion_mnist.h5).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-400}
gpt_steps=${2:-60}
for n in "$steps" "$gpt_steps"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "usage: launch/bench.sh [STEPS [GPT_STEPS]] (whole numbers)" >&2; exit 2; }
done
(( steps > 100 )) || { echo "bench.sh: STEPS must be > 100 (the first 100 are warm-up)" >&2; exit 2; }
(( gpt_steps >= 6 )) || { echo "bench.sh: GPT_STEPS must be >= 6" >&2; exit 2; }
gpt_warm=$(( gpt_steps / 3 ))
which=${ST_BENCH:-all}
torch_py=${ST_TORCH_PYTHON:-/usr/bin/python3}
bench_data=${ST_BENCH_DATA:-data/fashion_mnist.h5}
cores=$(nproc)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
source launch/env.sh  # run-as-root for Open MPI, OpenBLAS's AVX2 kernels (PyTorch's oneDNN
                      # detects them itself, so both sides get the same instruction set)

# Mean of FIELD over shardtrain's logged intervals after step AFTER (metrics.jsonl).
shardtrain_rate() {
  "$torch_py" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if "\"train\"" in l]
rows = [r for r in rows if r["step"] > int(sys.argv[3])]
print(sum(r[sys.argv[2]] for r in rows) / len(rows))' "$1" "${2:-samples_per_s}" "${3:-100}"
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

# gpt_row CONFIG NP THREADS DEVICE TORCH_ARGS...: shardtrain's tokens/s on CONFIG (plus the
# --set overrides in gpt_sets) vs PyTorch's identical GPT (tests/reference/torch_bench.py
# gpt) with TORCH_ARGS. Any token file serves for speed: fortunes.h5's ids fit every vocab.
gpt_sets=()
gpt_row() {
  local cfg=$1 np=$2 threads=$3 device=$4 run="$tmp/$1-$2-$4"; shift 4
  mpirun -np "$np" --oversubscribe --bind-to none build/shardtrain train "configs/$cfg.pbtxt" \
    --run-dir "$run" --set train.steps="$gpt_steps" --set train.log_every="$gpt_warm" --set train.eval_every=0 \
    --set checkpoint.every=0 --set train.threads="$threads" --set device="$device" \
    --set data.path=data/fortunes.h5 "${gpt_sets[@]}" >"$run.log" 2>&1 || { cat "$run.log"; exit 1; }
  local ours mfu ref
  ours=$(shardtrain_rate "$run/metrics.jsonl" tokens_per_s "$gpt_warm")
  mfu=$(grep -o '"mfu":[0-9.e+-]*' "$run/metrics.jsonl" | tail -1 | cut -d: -f2 || true); mfu=${mfu:-0}
  ref=$("$torch_py" tests/reference/torch_bench.py gpt --threads $(( threads * np )) --steps "$gpt_steps" \
        --warmup "$gpt_warm" --device "$device" "$@")
  "$torch_py" - "$cfg" "$np" "$threads" "$device" "$ours" "$mfu" "$ref" "$*" <<'PY'
import json, sys
cfg, np_, threads, device = sys.argv[1:5]
ours, mfu, ref, args = float(sys.argv[5]), float(sys.argv[6]), json.loads(sys.argv[7]), sys.argv[8]
torch_mfu = ref.get("mfu") or 0
print(f"{cfg:<10} {device:<5} {np_:<3} {threads:<8} {ours:12.0f} {100*mfu:6.1f}% {ref['tokens_per_s']:12.0f} "
      f"{100*torch_mfu:6.1f}% {ours/ref['tokens_per_s']:7.2f}  torch: {ref.get('precision','fp32')}"
      f"{' compile' if ref.get('compile') else ''} {ref.get('attention','')}")
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

echo
printf "%-10s %-5s %-3s %-8s %12s %7s %12s %7s %7s\n" config dev np threads "ours tok/s" MFU "torch tok/s" MFU ratio
gpt_tiny_torch=(--batch 32 --n-layer 4 --n-head 4 --d-model 128 --seq-len 128 --vocab 256 --precision fp32)
if [[ $which != gpu ]]; then
  for np in 1 2; do
    gpt_row gpt_tiny "$np" $(( cores / np > 0 ? cores / np : 1 )) cpu "${gpt_tiny_torch[@]}"
  done
fi
if [[ $which != cpu ]] && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  # One H100/H200 rank: GPT-2 small, 8 sequences of 1024 per step.
  gpt2=(--batch 8 --n-layer 12 --n-head 12 --d-model 768 --seq-len 1024 --vocab 50257)
  gpt_sets=(--set data.global_batch=8)
  gpt_row gpt2_124m 1 1 cuda "${gpt2[@]}" --precision bf16
  gpt_row gpt2_124m 1 1 cuda "${gpt2[@]}" --precision bf16 --compile
fi
echo "GPT ratio = shardtrain tokens/s / PyTorch tokens/s; MFU from 6N + 6LTd FLOPs per token (CPU rows: no peak known)"
