#!/usr/bin/env bash
# Runs the project's demo (`make demo`) in the environment `make setup` built.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. ./env.sh
exec vos-ros-demo "$@"
