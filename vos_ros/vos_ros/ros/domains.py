"""Choosing a private ROS domain on this machine (for tests and benchmarks; no rclpy)."""

from __future__ import annotations

import os
import random
import socket
import time

FASTDDS_BASE_PORT = 7400
FASTDDS_DOMAIN_GAIN = 250
FASTDDS_UNICAST_OFFSET = 10


def free_domain_id() -> int:
    """A ROS domain id (1..100) whose first Fast DDS participant port is free: nobody uses it now."""
    candidates = list(range(1, 101))
    random.Random(os.getpid() ^ time.monotonic_ns()).shuffle(candidates)
    for domain in candidates:
        port = FASTDDS_BASE_PORT + FASTDDS_DOMAIN_GAIN * domain + FASTDDS_UNICAST_OFFSET
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("", port))
            except OSError:
                continue
        return domain
    raise RuntimeError("no free ROS domain id in 1..100")


def local_ros_env(domain_id: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment, LD_LIBRARY_PATH and ament paths kept) on a
    private domain that only this machine's processes can discover."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env
