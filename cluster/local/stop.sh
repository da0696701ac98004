#!/usr/bin/env bash
# Stops the test cluster that cluster/local/start.sh started in DIR: its jobs first, then
# slurmd, slurmctld and munged, each by PID (TERM, then KILL after 10 s). Never by name,
# so no other Slurm, munge or job on the machine is touched. Leaves DIR (logs) in place.
#
#   cluster/local/stop.sh [DIR]       # DIR default: /tmp/shardtrain-slurm
set -uo pipefail  # no -e: stop as much as possible even if one step fails
dir="${1:-/tmp/shardtrain-slurm}"
[ -d "$dir" ] || { echo "stop.sh: no cluster directory $dir"; exit 0; }
dir="$(cd "$dir" && pwd)"
conf="$dir/slurm.conf"

# Processes of this cluster's jobs: job steps (slurmstepd) and the tasks they started
# carry SLURM_CONF=DIR/slurm.conf and a SLURM_JOB_ID (slurmstepd: from slurmd) in their
# environment. This script, its callers and the daemons are excluded.
job_pids() {
  local p env
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    [ "$p" = $$ ] || [ "$p" = "$PPID" ] && continue
    env="$(tr '\0' '\n' 2>/dev/null < "/proc/$p/environ")" || continue
    grep -qxF "SLURM_CONF=$conf" <<<"$env" || continue
    if grep -q '^SLURM_JOB_ID=' <<<"$env" || [ "$(cat "/proc/$p/comm" 2>/dev/null)" = slurmstepd ]; then
      echo "$p"
    fi
  done
}

# kill_wait SIGNAL PID...: signal, then wait up to 10 s; KILL what is left.
kill_wait() {
  local pids=("${@}") left
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null
  for _ in $(seq 40); do
    left=()
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
    [ ${#left[@]} -eq 0 ] && return 0
    sleep 0.25
  done
  kill -KILL "${left[@]}" 2>/dev/null
}

if [ -f "$conf" ] && [ -s "$dir/run/slurmctld.pid" ]; then
  SLURM_CONF="$conf" timeout 10 scancel --quiet --user=root 2>/dev/null  # let Slurm end them first
fi
mapfile -t jobs < <(job_pids)
kill_wait "${jobs[@]}"
for d in slurmd slurmctld munged; do
  f="$dir/run/$d.pid"
  [ -s "$f" ] || continue
  pid="$(cat "$f")"
  kill -0 "$pid" 2>/dev/null && kill_wait "$pid"
  rm -f "$f"
done
echo "stop.sh: stopped the cluster in $dir"
