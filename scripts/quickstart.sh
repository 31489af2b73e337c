#!/usr/bin/env bash
# Quick start: set up .venv (CPU torch), then run the main job on the embedded defaults:
# a local Prefect server on SQLite, `clutch serve`, and the deployment build-3dhiw/local on
# the sample egocentric video(s) (default ../shared/data/videos), then a DuckDB query of the result.
#   scripts/quickstart.sh [VIDEOS [OUT]]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "[quickstart] 1/3 set-up: .venv with CPU torch and CLUTCH"
bash scripts/setup.sh
OUT=${2:-runs/demo-3dhiw}
echo "[quickstart] 2/3 build-3dhiw/local through a local Prefect server (SQLite) on ${1:-../shared/data/videos}"
bash scripts/demo_deployment.sh "${1:-../shared/data/videos}" "$OUT"
echo "[quickstart] 3/3 the dataset in $OUT"
.venv/bin/clutch status "$OUT"
.venv/bin/clutch query "$OUT" "SELECT clip_id, num_frames, split, captions[1].text AS caption FROM clips ORDER BY clip_id"
cat <<MSG

Next:
  source .venv/bin/activate        # puts \`clutch\` on your PATH (or call .venv/bin/clutch)
  clutch card $OUT                 # the dataset card
  clutch synth --out runs/synth --clips 1500   # a synthetic corpus (1,173 train / 177 val / 150 test clips)
  clutch train runs/synth --out runs/run1      # every train-clutch stage, tiny preset (about 20 min on 2 cores)
  clutch generate runs/run1 "The left hand waves." --out wave.npz --seconds 3
MSG
