#!/usr/bin/env bash
# Create .venv and install CLUTCH with its test extras, CPU torch first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"
# Both OpenCV wheels ship `cv2`; make the contrib build (mediapipe's) the one on disk.
python -m pip install -q --force-reinstall --no-deps "opencv-contrib-python==4.12.0.88"
# decord's only Linux wheel is tagged cp36 (it loads its library through ctypes and works on 3.11):
# pip check reports that tag and nothing else may fail.
if ! out=$(python -m pip check 2>&1); then
  bad=$(printf '%s\n' "$out" | grep -v 'decord .* is not supported on this platform' || true)
  [ -z "$bad" ] || { printf '%s\n' "$bad"; exit 1; }
fi
python -c "import cv2, mediapipe, decord, torch; print('cv2', cv2.__version__, '| torch', torch.__version__)"
