"""Waiting in tests for what a node's threads do (imported by the ROS tests)."""

import time

from vos_ros.ros.client import ANSWER_TIMEOUT_S


def wait_for(condition, timeout: float = ANSWER_TIMEOUT_S) -> bool:
    """Poll ``condition`` every 10 ms until it holds or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())
