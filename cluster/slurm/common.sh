# Shared by the sbatch templates in this directory: sourced, not submitted.
#
# Parameters come from the environment (sbatch passes the submitting shell's environment
# on; --export=ALL is its default), each with a default:
#   ST_ROOT     the shardtrain checkout          default: the directory sbatch was run in
#   ST_BIN      the binary                       default: $ST_ROOT/build/shardtrain
#   ST_CONFIG   the job's config                 default: $ST_ROOT/configs/fashion_cnn.pbtxt
#   ST_RUN_DIR  checkpoints, metrics.jsonl       default: $ST_ROOT/runs/<config name>
#   ST_ARGS     more arguments for `shardtrain train`, split at spaces,
#               e.g. "--set device=cuda --set train.steps=5000"
# The ranks are the allocation's: sbatch --nodes, --ntasks-per-node, --gpus-per-node.

ST_ROOT="${ST_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}"
ST_BIN="${ST_BIN:-$ST_ROOT/build/shardtrain}"
ST_CONFIG="${ST_CONFIG:-$ST_ROOT/configs/fashion_cnn.pbtxt}"
ST_RUN_DIR="${ST_RUN_DIR:-$ST_ROOT/runs/$(basename "$ST_CONFIG" .pbtxt)}"
read -r -a st_extra <<< "${ST_ARGS:-}"
# --resume auto both starts the job (no checkpoint yet) and continues it after a requeue
# (newest valid checkpoint), so every run of the job is the same command.
st_train=("$ST_BIN" train "$ST_CONFIG" --run-dir "$ST_RUN_DIR" --resume auto "${st_extra[@]}")

# One line per run of the job: with --open-mode=append the log holds every run, and this
# tells them apart (SLURM_RESTART_COUNT counts requeues).
echo "=== job ${SLURM_JOB_ID:-?} run $(( ${SLURM_RESTART_COUNT:-0} + 1 )) on ${SLURM_JOB_NODELIST:-?}," \
     "${SLURM_NTASKS:-?} ranks, $(date '+%F %T'): ${st_train[*]}"

# st_finish RC: ends the batch script according to the training step's exit code.
#   0   the run is complete.
#   75  a stop signal arrived and every rank saved the same step (shardtrain's
#       kExitPreempted, EX_TEMPFAIL): requeue, and the next run continues from there.
#       `scontrol requeue` puts the job back in the queue (Slurm ends this script at
#       once, and holds the job for about 2 minutes before it may start again); where the
#       job cannot run scontrol (a container without Slurm's tools or config), exiting 75
#       does the same if slurm.conf says RequeueExit=75,76 (cluster/local/start.sh does).
#   76  the collective watchdog ended the job (a rank hung, stopped or died: comm.timeout_s).
#       The run continues from its last checkpoint on a fresh allocation, which is often
#       what clears a bad node; requeued like 75, but at most ST_MAX_HANG_REQUEUES times
#       (default 3, counted by SLURM_RESTART_COUNT) so a hang that always recurs ends.
#   any other: a failure, passed on (requeueing would fail the same way again; 3 is a
#       run that diverged, NaN/inf: retrying from the same checkpoint diverges again).
st_finish() {
  local rc=$1
  case "$rc" in
    0) echo "=== job ${SLURM_JOB_ID:-?}: training complete"; exit 0 ;;
    76)
      if (( ${SLURM_RESTART_COUNT:-0} >= ${ST_MAX_HANG_REQUEUES:-3} )); then
        echo "=== job ${SLURM_JOB_ID:-?}: a collective timed out again after ${SLURM_RESTART_COUNT:-0} requeues; giving up"
        exit 76
      fi
      echo "=== job ${SLURM_JOB_ID:-?}: a collective timed out (exit 76); requeueing from the last checkpoint"
      if command -v scontrol >/dev/null && scontrol requeue "$SLURM_JOB_ID"; then
        exit 0
      fi
      echo "=== scontrol requeue unavailable or refused: exiting 76 for RequeueExit=75,76"
      exit 76 ;;
    75)
      echo "=== job ${SLURM_JOB_ID:-?}: stopped after a checkpoint; requeueing"
      if command -v scontrol >/dev/null && scontrol requeue "$SLURM_JOB_ID"; then
        exit 0  # not reached when the requeue ended this script first
      fi
      echo "=== scontrol requeue unavailable or refused: exiting 75 for RequeueExit=75,76"
      exit 75 ;;
    *) echo "=== job ${SLURM_JOB_ID:-?}: training failed with exit code $rc"; exit "$rc" ;;
  esac
}

# st_run_forwarding CMD...: for launchers that the batch shell must signal itself (mpirun
# in the batch step; --signal=B:...): runs CMD in the background, forwards USR1 and USR2
# that reach this shell to it, and returns CMD's exit code. Bash runs a trap only between
# commands, never while a foreground command runs, hence `CMD &` and `wait`; a trapped
# signal also ends `wait` early (status > 128), hence waiting again until CMD has ended.
# SIGTERM is not forwarded: mpirun answers it by killing the ranks a second later, while
# Slurm's own SIGTERM (time limit, scancel) reaches the ranks directly anyway.
st_run_forwarding() {
  "$@" &
  st_child=$!
  st_forwarded=0
  trap 'st_forwarded=1; kill -USR1 "$st_child" 2>/dev/null' USR1
  trap 'st_forwarded=1; kill -USR2 "$st_child" 2>/dev/null' USR2
  local rc
  while :; do
    st_forwarded=0
    wait "$st_child"
    rc=$?
    [ "$st_forwarded" = 1 ] && [ "$rc" -gt 128 ] && continue  # woken by the trap: CMD still runs
    break
  done
  trap - USR1 USR2
  return "$rc"
}
