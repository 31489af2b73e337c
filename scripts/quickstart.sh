#!/usr/bin/env bash
# Quick start: set up .venv (CPU torch), then run the main job on the embedded defaults:
# a local Prefect server on SQLite, `clutch serve`, and the deployment build-3dhiw/local on
# the sample egocentric video(s) (default ../shared/data/videos), then a DuckDB query of the result.
#   scripts/quickstart.sh [VIDEOS [OUT]]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${2:-runs/demo-3dhiw}
bash scripts/demo_deployment.sh "${1:-../shared/data/videos}" "$OUT"
.venv/bin/clutch status "$OUT"
.venv/bin/clutch query "$OUT" "SELECT clip_id, num_frames, split, captions[1].text AS caption FROM clips ORDER BY clip_id"
