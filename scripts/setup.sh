#!/usr/bin/env bash
# Create .venv and install CLUTCH with its test extras, CPU torch first. Says what it does at each step.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
step() { printf '[setup] %s\n' "$*"; }
if [ -x .venv/bin/python ]; then
  step "using the virtual environment .venv"
else
  step "creating the virtual environment .venv ($("$PY" --version))"
  "$PY" -m venv .venv
fi
. .venv/bin/activate
step "upgrading pip"
python -m pip install -q --upgrade pip
# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build. The
# constraints keep it: without them the resolver may replace it with the newest (CUDA) release.
CONSTRAINTS=scripts/cpu-constraints.txt
step "installing torch 2.13.0 (CPU build)"
python -m pip install -q -c "$CONSTRAINTS" "torch==2.13.0"
step "installing CLUTCH and its test extras (pip install -e \".[dev]\" -c $CONSTRAINTS; a few minutes on a fresh machine)"
python -m pip install -q -c "$CONSTRAINTS" -e ".[dev]"
# Both OpenCV wheels ship `cv2`; make the contrib build (mediapipe's) the one on disk.
step "making opencv-contrib-python the cv2 on disk"
python -m pip install -q --force-reinstall --no-deps "opencv-contrib-python==4.12.0.88"
# decord's only Linux wheel is tagged cp36 (it loads its library through ctypes and works on 3.11):
# pip check reports that tag and nothing else may fail.
step "checking the installed packages"
if ! out=$(python -m pip check 2>&1); then
  bad=$(printf '%s\n' "$out" | grep -v 'decord .* is not supported on this platform' || true)
  [ -z "$bad" ] || { printf '%s\n' "$bad"; exit 1; }
fi
step "checking that the set-up stayed CPU-only"
python scripts/check_cpu_setup.py
python -c "import cv2, mediapipe, decord, torch; print('[setup] ready: cv2', cv2.__version__, '| torch', torch.__version__)"
step "virtual environment: $(du -sh .venv | cut -f1)"
