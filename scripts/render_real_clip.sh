#!/usr/bin/env bash
# Build 3D-HIW clips from the sample egocentric video(s) and render the first clip:
# source frames with 2D keypoints | both 3D hands | caption. Output: OUT/clip.mp4 and OUT/clip.gif.
# Usage: scripts/render_real_clip.sh [VIDEOS (default ../shared/data/videos)] [OUT (default out/real_clip)]
set -euo pipefail
cd "$(dirname "$0")/.."
VIDEOS="${1:-../shared/data/videos}"
OUT="${2:-out/real_clip}"
BIN="${CLUTCH_BIN:-.venv/bin}"
"$BIN/clutch" build "$VIDEOS" --out "$OUT/dataset" --no-progress
CLIP="$("$BIN/python" -c "import sys; from storage.reader import ClipReader; print(ClipReader(sys.argv[1]).clip_ids()[0])" "$OUT/dataset")"
"$BIN/clutch" render "$OUT/dataset" --clip-id "$CLIP" --out "$OUT/clip.mp4"
"$BIN/clutch" render "$OUT/dataset" --clip-id "$CLIP" --out "$OUT/clip.gif"
echo "rendered clip $CLIP -> $OUT/clip.mp4, $OUT/clip.gif"
