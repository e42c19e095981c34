#!/usr/bin/env bash
# Runs DVC's experiment queue to its end: `dvc queue start -j N` (default 1: on a CPU, two trainings at
# once share its cores and each runs 2.5x slower, README), then waits for the workers to finish, by their processes: `dvc queue status` asks the workers through DVC's file-based
# broker, whose half-written messages can kill a worker (dvc-task#73, dvc#10428). A run a dead worker
# left Queued is started again (at most 3 rounds), and a worker left idle after the queue emptied is
# stopped. Prints `dvc queue status`; fails if a run failed.
#   scripts/run-queue.sh [N]     from the project root, after `dvc exp run --queue ...`
set -euo pipefail
jobs=${1:-1}
celery=.dvc/tmp/exps/celery

workers_alive() {
  for pid_file in "$celery"/dvc-exp-worker-*.pid; do
    [ -e "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null && return 0
  done
  return 1
}

# The worker started with --clean leaves when the queue is empty and tells the others to leave too,
# through the same broker: a worker that missed it (seen after a half-written message) would idle
# forever, and so, seen too, can the --clean worker itself once every run is done. Workers with no
# experiment running under any of them for 30 s have nothing more to do, and are stopped; a run one
# of them had not taken yet stays Queued, and the next round starts it.
idle_leftovers() {
  local pid_file pid idle=()
  for pid_file in "$celery"/dvc-exp-worker-*.pid; do
    [ -e "$pid_file" ] && pid=$(cat "$pid_file") && kill -0 "$pid" 2>/dev/null || continue
    pgrep -P "$pid" >/dev/null && return 1
    idle+=("$pid")
  done
  echo "${idle[@]}"
}

wait_for_workers() {
  local idle_seconds=0 idle
  while workers_alive; do
    sleep 5
    if idle=$(idle_leftovers) && [ -n "$idle" ]; then
      idle_seconds=$((idle_seconds + 5))
      if [ "$idle_seconds" -ge 30 ]; then
        echo "run-queue: worker(s) $idle idle after the queue emptied (they missed DVC's shutdown): stopping them" >&2
        kill -TERM $idle 2>/dev/null || true
        sleep 5
      fi
    else
      idle_seconds=0
    fi
  done
}

count() { dvc queue status | awk -v state="$1" '$1 ~ /^[0-9a-f]{7}$/ && $NF == state' | wc -l; }

for round in 1 2 3; do
  dvc queue start -j "$jobs" >/dev/null
  sleep 5
  wait_for_workers
  queued=$(count Queued)
  [ "$queued" -eq 0 ] && break
  echo "run-queue: $queued runs still queued after the workers stopped (a worker died): starting them again" >&2
done
dvc queue status
failed=$(count Failed)
[ "$failed" -eq 0 ] || { echo "run-queue: $failed runs failed; see: dvc queue logs <name>" >&2; exit 1; }
