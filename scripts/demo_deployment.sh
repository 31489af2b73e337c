#!/usr/bin/env bash
# Build 3D-HIW through the Prefect deployment build-3dhiw/local, end to end on this machine:
# a local Prefect server (SQLite in PREFECT_HOME; started here unless one answers already),
# `clutch serve`, then `prefect deployment run build-3dhiw/local ... --watch`.
# Stops what it started on exit. Exit status: 0 when the run ended Completed and wrote shards.
#
#   scripts/demo_deployment.sh [VIDEOS [OUT]]
#     VIDEOS  video file, folder, glob or manifest (default: ../shared/data/videos)
#     OUT     dataset folder (default: runs/demo-3dhiw)
#   env: PREFECT_HOME (default .prefect), CLUTCH_PREFECT_PORT (default 4200),
#        CLUTCH_BIN (default .venv/bin if present), CLUTCH_DEMO_TIMEOUT_S (default 900)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BIN=${CLUTCH_BIN:-$([ -x .venv/bin/prefect ] && echo "$ROOT/.venv/bin" || dirname "$(command -v prefect)")}
PY=$BIN/python
[ -x "$PY" ] || PY=python3
abspath() { "$PY" -c 'import os, sys; print(os.path.abspath(sys.argv[1]))' "$1"; }
VIDEOS=$(abspath "${1:-../shared/data/videos}")
OUT=$(abspath "${2:-runs/demo-3dhiw}")
PORT=${CLUTCH_PREFECT_PORT:-4200}
TIMEOUT_S=${CLUTCH_DEMO_TIMEOUT_S:-900}

export PREFECT_HOME=$(abspath "${PREFECT_HOME:-.prefect}")
export PREFECT_API_URL="http://127.0.0.1:${PORT}/api"
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
# the server streams run logs (progress lines, a failure's cause) to `--watch` only with these
export PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED=true PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED=true
mkdir -p "$PREFECT_HOME"
LOGS=$PREFECT_HOME/demo-logs
mkdir -p "$LOGS"

STARTED=()  # process-group ids of what this script started
background() {  # run "$@" in its own process group (so cleanup stops its children too)
  if command -v setsid >/dev/null; then setsid "$@" & else "$@" & fi
  STARTED+=($!)
}
cleanup() {
  for pgid in "${STARTED[@]}"; do
    kill -TERM -- "-$pgid" 2>/dev/null || kill -TERM "$pgid" 2>/dev/null || true
  done
  for pgid in "${STARTED[@]}"; do
    for _ in $(seq 50); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pgid" 2>/dev/null || kill -KILL "$pgid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

healthy() { "$PY" - "$PREFECT_API_URL/health" <<'EOF'
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local t0=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - t0 > limit )); then echo "timed out after ${limit}s waiting for $what (logs: $LOGS)" >&2; return 1; fi
    sleep 1
  done
}

if healthy; then
  echo "using the Prefect server at $PREFECT_API_URL"
else
  echo "starting a Prefect server at $PREFECT_API_URL (PREFECT_HOME=$PREFECT_HOME, log $LOGS/server.log)"
  background "$BIN/prefect" server start --host 127.0.0.1 --port "$PORT" >"$LOGS/server.log" 2>&1
  wait_for 180 "the Prefect server" healthy
fi

echo "serving deployments (log $LOGS/serve.log)"
background "$BIN/clutch" serve >"$LOGS/serve.log" 2>&1
wait_for 180 "deployment build-3dhiw/local" "$BIN/prefect" deployment inspect build-3dhiw/local

echo "running build-3dhiw/local: videos=[$VIDEOS] out=$OUT"
PARAM_VIDEOS=$("$PY" -c 'import json, sys; print(json.dumps([sys.argv[1]]))' "$VIDEOS")
timeout "$TIMEOUT_S" "$BIN/prefect" deployment run build-3dhiw/local \
  --param videos="$PARAM_VIDEOS" --param out="$OUT" --watch | tee "$LOGS/run.log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ] || ! grep -q "Completed" "$LOGS/run.log"; then
  echo "the flow run did not complete (exit $rc); see $LOGS/serve.log" >&2
  exit 1
fi
shards=$(find "$OUT/shards" -name 'part-*.parquet' 2>/dev/null | wc -l)
if [ "$shards" -eq 0 ]; then
  echo "the run completed but wrote no shard in $OUT/shards (see $LOGS/serve.log)" >&2
  exit 1
fi
echo "done: $shards shard(s) in $OUT/shards; query with: $BIN/clutch query $OUT \"SELECT count(*) FROM clips\""
