#!/usr/bin/env bash
# `make test-numpy1`: the model, engine, converter and depth tests in .venv-np1, numpy 1.26.4 (Ubuntu
# 24.04's) with the ROS 2 Jazzy wheels, against the same colcon install/ as the main tests. Extra
# arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-np1/bin/python ] || scripts/setup_venv_numpy1.sh
set +u  # the activate and colcon setup scripts read unset variables
# shellcheck disable=SC1091
. .venv-np1/bin/activate
export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV"
# shellcheck disable=SC1091
. install/setup.bash
set -u
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
python - <<'PY'
import numpy
assert numpy.__version__ == "1.26.4", f".venv-np1 has numpy {numpy.__version__}: run scripts/setup_venv_numpy1.sh"
PY
# by file name, wherever the test tree keeps them
names=(test_network.py test_backbone.py test_session.py test_fragments.py test_convert.py test_depth.py test_depth_node.py)
files=()
for name in "${names[@]}"; do
  while IFS= read -r path; do files+=("$path"); done < <(find vos_ros/test -name "$name")
done
[ "${#files[@]}" -eq "${#names[@]}" ] || { echo "test-numpy1: expected ${#names[@]} test files, found: ${files[*]}" >&2; exit 1; }
exec python -m pytest "${files[@]}" -p no:cacheprovider "$@"
