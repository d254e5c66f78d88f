"""Running the installed command-line tools as a user would, each on a private ROS domain."""

import subprocess

import pytest

from vos_ros.ros.domains import free_domain_id, local_ros_env


@pytest.fixture(scope="session")
def run_tool():
    """``run_tool("vos-ros-replay", arg, ..., timeout=s)``: the finished process (stdout, stderr, code).

    Every run gets its own ROS domain (should it start a node) and no standard input; ``timeout``
    turns a hang into a failure instead of blocking the suite."""

    def run(command: str, *args, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(
            [command, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=local_ros_env(free_domain_id()),
            stdin=subprocess.DEVNULL,
        )

    return run
