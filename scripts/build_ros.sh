#!/usr/bin/env bash
# Builds vos_ros_interfaces and vos_ros with colcon into install/.
# --symlink-install: edits to vos_ros's Python sources take effect without a
# rebuild; new entry points, launch or config files need `make setup` again.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck disable=SC1091
. .venv/bin/activate
# The venv is the ROS prefix. colcon warns that it has no local_setup.*
# files; that is expected for a plain prefix and harmless.
export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV"

colcon build --symlink-install \
  --base-paths vos_ros_interfaces vos_ros \
  --cmake-args -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release
