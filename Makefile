# make setup | lint | test | demo | clean | distclean   (see README.md)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

VENV_STAMP := .venv/.vos_requirements.stamp
BUILD_STAMP := install/.vos_build.stamp
ROS_SOURCES := $(shell find vos_ros_interfaces -type f) \
	vos_ros/package.xml vos_ros/setup.py vos_ros/setup.cfg vos_ros/resource/vos_ros \
	$(wildcard vos_ros/launch/*.launch.py vos_ros/config/*.yaml vos_ros/config/*.xml)
PYTEST_ARGS ?=
NUMPY1_PYTEST_ARGS ?=

.PHONY: setup lint test test-numpy1 demo clean distclean

setup: $(VENV_STAMP) $(BUILD_STAMP) env.sh

$(VENV_STAMP): requirements/core.txt requirements/ros-jazzy.txt requirements/ros-build.txt \
		requirements/lock.txt scripts/setup_venv.sh scripts/fix_rosidl_cmake_paths.py
	scripts/setup_venv.sh
	touch $@

$(BUILD_STAMP): $(VENV_STAMP) $(ROS_SOURCES) scripts/build_ros.sh
	scripts/build_ros.sh
	touch $@

env.sh: scripts/write_env.sh
	scripts/write_env.sh

# ruff lints and checks the formatting of every Python file (settings: ruff.toml).
lint: setup
	. ./env.sh && ruff check . && ruff format --check .

# pytest exits 5 when it collected no test: that is a failure here.
test: setup lint test-numpy1
	. ./env.sh && { python -m pytest vos_ros/test $(PYTEST_ARGS) || rc=$$?; } \
		&& case "$${rc:-0}" in 0) ;; 5) echo "pytest collected no tests" >&2; exit 1 ;; *) exit "$$rc" ;; esac

# The model, engine, converter and depth tests again with numpy 1.26 (Ubuntu 24.04's), in .venv-np1
# (part of make test: about 4 minutes on 2 busy cores, 80 s of CPU).
test-numpy1: setup .venv-np1/.vos_requirements.stamp
	scripts/test_numpy1.sh $(NUMPY1_PYTEST_ARGS)

.venv-np1/.vos_requirements.stamp: requirements/numpy1.txt requirements/core.txt requirements/ros-jazzy.txt \
		requirements/lock.txt scripts/setup_venv_numpy1.sh
	scripts/setup_venv_numpy1.sh
	touch $@

demo: setup
	scripts/demo.sh

clean:
	rm -rf build install log env.sh

distclean: clean
	rm -rf .venv .venv-np1
