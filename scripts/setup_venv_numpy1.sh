#!/usr/bin/env bash
# Creates .venv-np1: the same pinned packages as .venv (requirements/lock.txt) but numpy 1.26.4 and
# opencv-python-headless 4.11.0.86 (requirements/numpy1.txt), so that `make test-numpy1` runs the
# engine, converter and depth tests against numpy 1 (Ubuntu 24.04's) as well as numpy 2.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if [ ! -x .venv-np1/bin/python ]; then
  "$python" -m venv .venv-np1
fi
# requirements/core.txt and lock.txt without their numpy and opencv pins, which numpy1.txt replaces,
# and without the ONNX packages and openvino (the pinned onnx needs numpy 2; the onnxruntime and
# openvino backends and their tests are not part of the numpy-1 run).
constraints=$(mktemp)
core=$(mktemp)
trap 'rm -f "$constraints" "$core"' EXIT
grep -v -E '^(numpy|opencv-python-headless)==' requirements/lock.txt > "$constraints"
grep -v -E '^(numpy|opencv-python-headless|onnx|onnxruntime|onnxscript|openvino)==' requirements/core.txt > "$core"
{
  .venv-np1/bin/python -m pip install --quiet --disable-pip-version-check \
    -c "$constraints" -r requirements/numpy1.txt \
    -r "$core" -r requirements/ros-jazzy.txt \
    2>&1 1>&3 | { grep -v "^WARNING: Location '.*' is ignored" || true; } 1>&2
} 3>&1
