#!/usr/bin/env bash
# Starts a throwaway single-node Slurm on this machine, for the tests and for trying the
# templates in cluster/slurm/: munged + slurmctld + slurmd from Debian's `munge` and
# `slurm-wlm` (launch/install-deps.sh installs them), as root, without systemd or cgroups.
#
#   cluster/local/start.sh [DIR]      # DIR default: /tmp/shardtrain-slurm
#   export SLURM_CONF=DIR/slurm.conf  # what sbatch/srun/squeue/scontrol/scancel read
#   ...
#   cluster/local/stop.sh DIR         # kills jobs and daemons by PID
#
# Everything lives in DIR (config, munge key and socket, state, spool, logs, PID files)
# and the daemons listen on two free ports picked here, so it disturbs no other Slurm or
# munge on the machine. Idempotent: if DIR's cluster is already up, it says so and exits 0;
# if it is half up (a daemon died), it is stopped and started afresh. Exits non-zero with
# the tail of the failing daemon's log when something does not come up within 60 s.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-/tmp/shardtrain-slurm}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"  # the daemons and every client below read this file

for tool in munged slurmctld slurmd scontrol sinfo; do
  command -v "$tool" >/dev/null || { echo "start.sh: $tool not found (run launch/install-deps.sh)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "start.sh: must run as root (slurmd starts jobs as their users)" >&2; exit 1; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [ -f "$conf" ]; then
  if alive "$dir/run/munged.pid" && alive "$dir/run/slurmctld.pid" && alive "$dir/run/slurmd.pid" \
     && timeout 10 scontrol ping >/dev/null 2>&1; then
    echo "start.sh: already running in $dir (export SLURM_CONF=$conf)"
    exit 0
  fi
  "$here/stop.sh" "$dir" >/dev/null  # half up: start again from a clean state
  rm -rf "$dir/state" "$dir/spool"
fi
mkdir -p "$dir/munge" "$dir/run" "$dir/log" "$dir/state" "$dir/spool"
chmod 700 "$dir/munge"  # munged refuses a key or socket directory others can write to

# A free TCP port: nothing accepts a connection on it (bash's /dev/tcp; no extra tools).
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "start.sh: no free port found" >&2; exit 1
}
ctld_port="$(free_port)"
slurmd_port="$(free_port)"
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port="$(free_port)"; done

# Node shape from slurmd itself (what it will report, so the node is not drained for a
# mismatch), with at least 2 CPUs: the tests run 2 ranks, and config_overrides below makes
# slurmd report the configured count even on a 1-core machine.
node="$(hostname -s)"
cpus="$(nproc)"; [ "$cpus" -ge 2 ] || cpus=2
mem="$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')"
[ -n "$mem" ] || mem=1024

# Munge: a fresh key for this cluster only, a socket in DIR (AuthInfo below points Slurm
# at it). --force: munged otherwise refuses to run as root.
key="$dir/munge/munge.key"
if [ ! -s "$key" ]; then
  if ! mungekey --create --keyfile="$key" 2>/dev/null; then
    dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
  fi
fi
chmod 400 "$key"
sock="$dir/munge/munge.socket"
munged --force --socket="$sock" --key-file="$key" --pid-file="$dir/run/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"

cat > "$conf" <<CONF
# Written by cluster/local/start.sh: a one-node test cluster in $dir.
ClusterName=shardtrain-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# No systemd, no cgroups: track a job's processes through /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# srun --mpi=pmix is the default: Debian's Open MPI takes its rank and peers from PMIx.
MpiDefault=pmix
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
# A batch job whose script exits 75 (shardtrain's "stopped by a signal after saving a
# checkpoint") or 76 (the collective watchdog ended a hung job) is requeued: the way to
# requeue where scontrol is not available in the job.
RequeueExit=75,76
# The default 300 s: a finished job stays visible to scontrol (no accounting database).
MinJobAge=300
SchedulerType=sched/backfill
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld -f "$conf"
slurmd -f "$conf"

# Up means: the controller answers and the node is idle (registered, not drained).
for _ in $(seq 120); do
  state="$(timeout 5 sinfo -h -N -o %t 2>/dev/null | head -1 || true)"
  [ "$state" = idle ] && break
  for d in munged slurmctld slurmd; do
    if [ -s "$dir/run/$d.pid" ] && ! alive "$dir/run/$d.pid"; then
      echo "start.sh: $d died; tail of $dir/log/$d.log:" >&2; tail -20 "$dir/log/$d.log" >&2; exit 1
    fi
  done
  sleep 0.5
done
if [ "${state:-}" != idle ]; then
  echo "start.sh: node $node is '${state:-unknown}', not idle, after 60 s; logs in $dir/log:" >&2
  tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  exit 1
fi
echo "start.sh: Slurm up in $dir: node $node, $cpus CPUs, ${mem} MB (export SLURM_CONF=$conf)"
