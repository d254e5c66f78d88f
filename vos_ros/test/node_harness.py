"""Helpers for the node tests: vos_node in its own process on a private ROS domain, and a client
node in the test process that talks to it over real DDS. Every wait is bounded."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from vos_ros.bags.node_process import NodeProcess
from vos_ros.ros.convert import labels_to_image, rgb_to_image
from vos_ros.ros.domains import free_domain_id, local_ros_env
from vos_ros_interfaces.msg import TrackedObjectArray
from vos_ros_interfaces.srv import RemoveObjects, SetInitialMask

__all__ = ["ANSWER_TIMEOUT_S", "Client", "free_domain_id", "make_header", "stamp_of", "start_node"]

STARTUP_TIMEOUT_S = 90.0
ANSWER_TIMEOUT_S = 20.0


def start_node(ros_args: list[str], log_path: Path, domain_id: int) -> NodeProcess:
    """vos_node (the installed console script) with ``--ros-args`` on the given domain."""
    return NodeProcess(ros_args, log_path, env=local_ros_env(domain_id))


def stamp_of(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def make_header(stamp_ns: int, frame_id: str = "camera_optical") -> Header:
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return header


def diagnostic_values(array: DiagnosticArray) -> dict[str, str]:
    """Key -> value of the first status in a DiagnosticArray."""
    return {kv.key: kv.value for kv in array.status[0].values}


class Client:
    """The test's own ROS node: publishes frames, calls the services, collects the node's outputs."""

    def __init__(self, domain_id: int, process: NodeProcess, node: str = "/vos_node", image_topic: str = "/image"):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.process = process
        self.node_name = node
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(f"vos_test_client_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._cond = threading.Condition()
        self.labels: dict[int, Image] = {}
        self.label_times: dict[int, float] = {}
        self.objects: dict[int, TrackedObjectArray] = {}
        self.overlays: dict[int, Image] = {}
        self.diagnostics: list[tuple[float, DiagnosticArray]] = []
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, image_topic, reliable)
        self.node.create_subscription(Image, f"{node}/labels", self._store(self.labels, self.label_times), reliable)
        self.node.create_subscription(
            TrackedObjectArray, f"{node}/tracked_objects", self._store(self.objects), reliable
        )
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
        self.overlay_sub = None
        self.set_mask = self.node.create_client(SetInitialMask, f"{node}/set_initial_mask")
        self.remove = self.node.create_client(RemoveObjects, f"{node}/remove_objects")
        self.reset = self.node.create_client(Trigger, f"{node}/reset")
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:
            pass

    def _store(self, by_stamp: dict, times: dict | None = None):
        def callback(msg) -> None:
            stamp = stamp_of(msg.header)
            with self._cond:
                by_stamp[stamp] = msg
                if times is not None:
                    times.setdefault(stamp, time.time_ns())
                self._cond.notify_all()

        return callback

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        if msg.status and msg.status[0].name.startswith(self.node_name):
            with self._cond:
                self.diagnostics.append((time.monotonic(), msg))
                self._cond.notify_all()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=5.0)

    # waiting ----------------------------------------------------------------------------------

    def check_alive(self) -> None:
        code = self.process.exit_code()
        if code is not None:
            raise AssertionError(f"vos_node exited with code {code}:\n{self.process.log_tail(40)}")

    def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Poll ``condition`` (under the client's lock) until true or ``timeout``; fails if the node died."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition():
                self.check_alive()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def wait_ready(self) -> None:
        """Until the node's services exist and it subscribes to the image topic."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for ready in (
            self.set_mask.service_is_ready,
            self.remove.service_is_ready,
            self.reset.service_is_ready,
            lambda: self.image_pub.get_subscription_count() > 0,
        ):
            assert self.wait(ready, deadline - time.monotonic()), (
                f"vos_node not ready within {STARTUP_TIMEOUT_S:.0f} s:\n{self.process.log_tail(40)}"
            )

    # frames -----------------------------------------------------------------------------------

    def publish(self, rgb: np.ndarray, stamp_ns: int, encoding: str = "rgb8") -> Header:
        msg = rgb_to_image(rgb, make_header(stamp_ns))
        if encoding == "bgr8":
            msg = rgb_to_image(np.ascontiguousarray(rgb[:, :, ::-1]), msg.header)
            msg.encoding = "bgr8"
        self.image_pub.publish(msg)
        return msg.header

    def send_frame(self, rgb: np.ndarray, encoding: str = "rgb8", attempts: int = 3) -> tuple[Image, Header]:
        """Publish a frame stamped now and wait for its labels (re-publishing if a sample was lost)."""
        stamp_ns = time.time_ns()
        for _ in range(attempts):
            header = self.publish(rgb, stamp_ns, encoding)
            if self.wait(lambda: stamp_ns in self.labels, ANSWER_TIMEOUT_S / attempts):
                return self.labels[stamp_ns], header
        raise AssertionError(f"no labels for stamp {stamp_ns}:\n{self.process.log_tail(40)}")

    def tracked(self, stamp_ns: int) -> TrackedObjectArray:
        assert self.wait(lambda: stamp_ns in self.objects, ANSWER_TIMEOUT_S), f"no tracked objects for {stamp_ns}"
        return self.objects[stamp_ns]

    def latest_diagnostics(self, after: float | None = None) -> dict[str, str]:
        """The values of a diagnostics message received after ``after`` (monotonic; default now)."""
        after = time.monotonic() if after is None else after
        assert self.wait(lambda: self.diagnostics and self.diagnostics[-1][0] > after, 10.0), "no diagnostics"
        return diagnostic_values(self.diagnostics[-1][1])

    def subscribe_overlay(self) -> None:
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.overlay_sub = self.node.create_subscription(
            Image, f"{self.node_name}/overlay", self._store(self.overlays), reliable
        )
        assert self.wait(lambda: self.overlay_sub.get_publisher_count() > 0, 10.0)

    def unsubscribe_overlay(self) -> None:
        self.node.destroy_subscription(self.overlay_sub)
        self.overlay_sub = None

    # services ---------------------------------------------------------------------------------

    def call(self, client, request, timeout: float = ANSWER_TIMEOUT_S):
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        deadline = time.monotonic() + timeout
        while not done.wait(0.1):
            self.check_alive()
            assert time.monotonic() < deadline, f"{client.srv_name} did not answer within {timeout:.0f} s"
        return future.result()

    def set_initial_mask(self, mask: np.ndarray | Image, stamp_ns: int = 0, names=(), append=False):
        """Call ~/set_initial_mask with a label map (sent as mono16 stamped ``stamp_ns``) or a ready Image."""
        if isinstance(mask, np.ndarray):
            mask = labels_to_image(mask, make_header(stamp_ns))
        return self.call(self.set_mask, SetInitialMask.Request(mask=mask, labels=list(names), append=append))

    def remove_objects(self, ids):
        return self.call(self.remove, RemoveObjects.Request(object_ids=list(ids)))

    def reset_node(self):
        return self.call(self.reset, Trigger.Request())
