#!/bin/sh
# The runner image's entrypoint: check the machine (ratchet doctor), then start a Prefect worker
# for $RATCHET_POOL (default gpu) or run the command given instead (`docker run IMAGE ratchet run`).
#   RATCHET_PROJECT_DIR  the mounted project (params.yaml, dvc.yaml, .dvc)   default /project
#   RATCHET_POOL         the work pool the worker serves                     default gpu
#   RATCHET_REQUIRE_GPU  1: refuse to start without a CUDA device            default 1 for pool gpu
set -eu
project="${RATCHET_PROJECT_DIR:-/project}"
pool="${RATCHET_POOL:-gpu}"
if [ "$pool" = "gpu" ]; then require_gpu="${RATCHET_REQUIRE_GPU:-1}"; else require_gpu="${RATCHET_REQUIRE_GPU:-0}"; fi

flags="--project $project"
[ "$require_gpu" = "1" ] && flags="$flags --require-gpu"
if [ "$#" -eq 0 ]; then flags="$flags --require-api"; fi
# shellcheck disable=SC2086  # flags is a list of words
if ! ratchet doctor $flags; then
  echo "ratchet runner: the checks above failed; not starting" >&2
  exit 78  # EX_CONFIG
fi
cd "$project"
if [ "$#" -gt 0 ]; then
  exec "$@"
fi
exec prefect worker start --pool "$pool" --name "ratchet-$pool-$(hostname)"
