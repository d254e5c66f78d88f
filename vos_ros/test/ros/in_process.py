"""Helpers of the ROS tests that drive a VosNode in this process: wait for its threads, give it objects."""

import time

from vos_ros.ros.client import ANSWER_TIMEOUT_S
from vos_ros.ros.convert import labels_to_image, rgb_to_image
from vos_ros.ros.stamps import make_header
from vos_ros_interfaces.srv import SetInitialMask


def wait_for(condition, timeout: float = ANSWER_TIMEOUT_S) -> bool:
    """Poll ``condition`` every 10 ms until it holds or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())


def give_objects(node, clip, camera: str | None = None, stamp_ns: int = 1_000_000_000) -> None:
    """Hand ``clip``'s first frame to ``camera`` (default: the node's first) stamped ``stamp_ns``, then its
    label image through the initial-mask service for that stamp; asserts the service accepted it."""
    header = make_header(stamp_ns)
    node.receive_image(rgb_to_image(clip.frames[0], header), camera=camera)
    answer = node.receive_initial_mask(SetInitialMask.Request(mask=labels_to_image(clip.labels[0], header)), camera)
    assert answer.success, answer.message
