"""vos_node's /diagnostics status as a robot sees it, with the node in this process (a test double
makes the model fail) and its status read over DDS: ERROR with the exception's message after
consecutive failures and OK again once frames succeed; ERROR when the camera stops while active."""

import threading
import time

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from vos_ros.ros.client import ANSWER_TIMEOUT_S
from vos_ros.ros.convert import labels_to_image, rgb_to_image
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.node import InvalidHandle, VosNode, spin
from vos_ros.ros.stamps import make_header
from vos_ros.synthetic import make_clip
from vos_ros_interfaces.srv import SetInitialMask

pytestmark = pytest.mark.ros

FAILURE = "test double: CUDA out of memory"


class Harness:
    """A VosNode with the shared network, and a second node that publishes images and keeps the
    node's /diagnostics statuses, spun together in this process."""

    def __init__(self, network, **overrides):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=free_domain_id())
        params = dict(diagnostics_period=0.2, use_depth=False, **overrides)
        self.node = VosNode(
            network=network,
            context=self.context,
            parameter_overrides=[Parameter(name, value=value) for name, value in params.items()],
        )
        self.peer = rclpy.create_node("health_peer", context=self.context)
        self.statuses: list[DiagnosticStatus] = []
        self._cond = threading.Condition()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.peer.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
        self.image_pub = self.peer.create_publisher(Image, "/image", reliable)
        self.executor = MultiThreadedExecutor(context=self.context)
        for node in (self.node, self.peer):
            self.executor.add_node(node)
        self.spinner = threading.Thread(target=spin, args=(self.executor,), daemon=True)
        self.spinner.start()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "/vos_node: segmentation":
                with self._cond:
                    self.statuses.append(status)
                    self._cond.notify_all()

    def next_status(self, condition, timeout: float = ANSWER_TIMEOUT_S) -> DiagnosticStatus:
        """The first status received from now on that satisfies ``condition`` (fails after ``timeout``)."""
        with self._cond:
            start = len(self.statuses)
            found = self._cond.wait_for(lambda: any(condition(s) for s in self.statuses[start:]), timeout)
            seen = [(s.level, s.message) for s in self.statuses[start:]]
            assert found, f"no such status within {timeout} s; saw {seen[-5:]}"
            return next(s for s in self.statuses[start:] if condition(s))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.spinner.join(timeout=5.0)
        self.node.destroy_node()
        self.peer.destroy_node()
        self.context.try_shutdown()


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def errors_reach(node: VosNode, count: int) -> bool:
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while node.count("errors") < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return node.count("errors") >= count


def processed_reaches(node: VosNode, count: int) -> bool:
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while node.count("frames_processed") < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return node.count("frames_processed") >= count


def test_model_failures_are_an_error_with_the_message_then_ok_again(matching_network):
    harness = Harness(matching_network, model_failures_error=2, stale_input_s=3600.0, input_timeout=3600.0)
    node = harness.node
    try:
        clip = make_clip(num_objects=2, num_frames=8, size=(96, 128), seed=0)
        first = make_header(1_000_000_000, "camera_optical")
        node.receive_image(rgb_to_image(clip.frames[0], first))
        assert processed_reaches(node, 1), "the frame before the mask is out of the worker's way"
        answer = node.receive_initial_mask(SetInitialMask.Request(mask=labels_to_image(clip.labels[0], first)))
        assert answer.success, answer.message
        step = node.session.step

        def failing_step(rgb):
            raise RuntimeError(FAILURE)

        node.session.step = failing_step
        for index in (1, 2):
            node.receive_image(
                rgb_to_image(clip.frames[index], make_header((index + 1) * 1_000_000_000, "camera_optical"))
            )
            assert errors_reach(node, index), "the worker ran the failing model"
        status = harness.next_status(lambda s: s.level == DiagnosticStatus.ERROR)
        assert "2 consecutive frames failed in the model" in status.message and FAILURE in status.message
        figures = values(status)
        assert figures["model_errors"] == "2" and figures["lifecycle_state"] == "active"
        assert FAILURE in figures["last_error"]
        assert node.get_fully_qualified_name() == "/vos_node"

        node.session.step = step
        processed = node.count("frames_processed")
        node.receive_image(rgb_to_image(clip.frames[3], make_header(4_000_000_000, "camera_optical")))
        assert processed_reaches(node, processed + 1)
        status = harness.next_status(lambda s: s.level == DiagnosticStatus.OK)
        assert status.message.startswith("tracking 2 objects"), status.message
        assert values(status)["model_errors"] == "2" and values(status)["consecutive_failures"] == "0"
    finally:
        harness.close()


def test_a_camera_that_stops_is_an_error_after_stale_input_s(matching_network):
    harness = Harness(matching_network, stale_input_s=1.0, input_timeout=0.5)
    node = harness.node
    stop = threading.Event()
    frame = make_clip(num_objects=1, num_frames=1, size=(96, 128), seed=0).frames[0]

    def camera():
        while not stop.wait(0.1):
            harness.image_pub.publish(rgb_to_image(frame, make_header(time.time_ns(), "camera_optical")))

    publisher = threading.Thread(target=camera, daemon=True)
    try:
        publisher.start()
        status = harness.next_status(lambda s: s.level == DiagnosticStatus.OK and values(s)["frames_received"] != "0")
        assert status.message.startswith("waiting for objects"), status.message
        stop.set()
        publisher.join(timeout=5.0)
        status = harness.next_status(lambda s: s.level == DiagnosticStatus.ERROR)
        assert "no input image for" in status.message and "while active (stale_input_s=1)" in status.message

        node.trigger_deactivate()
        status = harness.next_status(lambda s: values(s)["lifecycle_state"] == "inactive")
        assert status.level == DiagnosticStatus.OK and status.message.startswith("inactive"), status.message
    finally:
        stop.set()
        harness.close()


def test_the_executor_carries_on_past_an_entity_destroyed_while_in_use():
    """rclpy raises InvalidHandle in the spinning thread when a subscription is destroyed (deactivate) after
    another executor thread took it; the node's spin goes on instead of ending, so /diagnostics keeps coming."""

    class Executor:
        def __init__(self, failures):
            self.failures, self.calls = list(failures), 0

        def spin(self):
            self.calls += 1
            if self.failures:
                raise self.failures.pop(0)

    class Logger:
        def __init__(self):
            self.warnings = []

        def warning(self, text):
            self.warnings.append(text)

    executor, logger = Executor([InvalidHandle("cannot use Destroyable because destruction was requested")]), Logger()
    spin(executor, logger)
    assert executor.calls == 2 and "destruction was requested" in logger.warnings[0]
    with pytest.raises(RuntimeError):
        spin(Executor([RuntimeError("anything else still ends it")]), logger)
