"""vos_node as a managed (lifecycle) node, in its own process, driven through the standard
~/get_state and ~/change_state services: every transition, the services refused while the node is
not active, the objects kept through deactivate/activate, a bad weights path failing configure
while the node stays up, shutdown from each state, and autostart both ways."""

import threading
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from vos_ros.ros.client import VosClient
from vos_ros.ros.convert import mask_to_labels
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.node import VosNode
from vos_ros.ros.process import NodeProcess
from vos_ros.ros.stamps import stamp_to_ns
from vos_ros.synthetic import make_clip

pytestmark = pytest.mark.ros

HEIGHT, WIDTH = 180, 240
FAST = ["-p", "config:=matching", "-p", "short_side:=192", "-p", "diagnostics_period:=0.2", "-p", "use_depth:=false"]
MIN_IOU = 0.5


class Lifecycle:
    """The ~/get_state and ~/change_state clients of one node, on the test's client node."""

    def __init__(self, client: VosClient):
        self.client = client
        self.get = client.node.create_client(GetState, f"{client.node_name}/get_state")
        self.change = client.node.create_client(ChangeState, f"{client.node_name}/change_state")
        assert client.wait(lambda: self.get.service_is_ready() and self.change.service_is_ready(), 90.0), (
            f"no lifecycle services:\n{client.process.log_tail(40)}"
        )

    def state(self) -> str:
        return self.client.call(self.get, GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return self.client.call(self.change, request, timeout=90.0).success


def iou(labels: np.ndarray, truth: np.ndarray, object_id: int) -> float:
    a, b = labels == object_id, truth == object_id
    return float((a & b).sum() / max(1, (a | b).sum()))


def subscribed(client: VosClient) -> bool:
    return client.image_pub.get_subscription_count() > 0


def shut_down(client: VosClient, lifecycle: Lifecycle, transition_id: int) -> None:
    """Ask for the shutdown transition: the process then ends by itself, cleanly (it may end before
    its answer arrives)."""
    future = lifecycle.change.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    deadline = time.monotonic() + 60.0
    while client.process.exit_code() is None:
        assert time.monotonic() < deadline, "the node did not end after its shutdown transition"
        time.sleep(0.1)
    if done.is_set():
        assert future.result().success
    log = client.process.log_path.read_text()
    assert client.process.exit_code() == 0, log
    assert "Traceback" not in log


@pytest.fixture
def clip():
    return make_clip(num_objects=3, num_frames=40, size=(HEIGHT, WIDTH), seed=1, speed=1.5)


def test_every_transition_across_processes(tmp_path, clip):
    domain = free_domain_id()
    process = NodeProcess([*FAST, "-p", "autostart:=false"], tmp_path / "vos_node.log", domain_id=domain)
    client = None
    try:
        client = VosClient(domain_id=domain, process=process, outputs=True)
        lifecycle = Lifecycle(client)
        assert lifecycle.state() == "unconfigured", "autostart:=false waits unconfigured"
        assert not subscribed(client)

        def refused(state: str) -> None:
            for response in (
                client.set_initial_mask(clip.labels[0], 0),
                client.remove_objects([1]),
                client.reset(),
            ):
                assert not response.success
                assert f"is {state}, not active" in response.message, response.message

        refused("unconfigured")
        assert lifecycle.transition(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.state() == "inactive"
        refused("inactive")
        assert not subscribed(client), "inactive: no camera subscription"

        assert lifecycle.transition(Transition.TRANSITION_ACTIVATE)
        assert lifecycle.state() == "active"
        assert client.wait(lambda: subscribed(client), 30.0)
        _, header = client.send_frame(clip.frames[0])
        answer = client.set_initial_mask(clip.labels[0], stamp_to_ns(header.stamp), labels=["a", "b", "c"])
        assert answer.success, answer.message
        for index in range(1, 3):
            client.send_frame(clip.frames[index])

        assert lifecycle.transition(Transition.TRANSITION_DEACTIVATE)
        assert lifecycle.state() == "inactive"
        assert client.wait(lambda: not subscribed(client), 30.0), "deactivate drops the camera subscription"
        refused("inactive")
        diagnostics = client.latest_diagnostics()
        assert diagnostics["lifecycle_state"] == "inactive" and diagnostics["objects_tracked"] == "3"

        assert lifecycle.transition(Transition.TRANSITION_ACTIVATE)
        assert client.wait(lambda: subscribed(client), 30.0)
        ious = {1: [], 2: [], 3: []}
        for index in range(3, 7):  # the clip goes on where it stopped
            msg, header = client.send_frame(clip.frames[index])
            labels = mask_to_labels(msg)
            for k in ious:
                ious[k].append(iou(labels, clip.labels[index], k))
            objects = client.tracked(stamp_to_ns(header.stamp)).objects
            assert [(o.id, o.label) for o in objects] == [(1, "a"), (2, "b"), (3, "c")]
        for k, values in ious.items():
            assert np.mean(values) >= MIN_IOU, (k, values)

        assert lifecycle.transition(Transition.TRANSITION_DEACTIVATE)
        assert lifecycle.transition(Transition.TRANSITION_CLEANUP)
        assert lifecycle.state() == "unconfigured"
        refused("unconfigured")
        assert lifecycle.transition(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.transition(Transition.TRANSITION_ACTIVATE)
        assert client.wait(lambda: subscribed(client), 30.0)
        msg, header = client.send_frame(clip.frames[20])
        assert not mask_to_labels(msg).any() and client.tracked(stamp_to_ns(header.stamp)).objects == [], (
            "cleanup forgot the objects"
        )
        assert not lifecycle.transition(Transition.TRANSITION_CONFIGURE), "no configure from active"

        shut_down(client, lifecycle, Transition.TRANSITION_ACTIVE_SHUTDOWN)
        log = process.log_path.read_text()
        assert "shut down from active" in log
    finally:
        if client is not None:
            client.close()
        process.stop()


def test_bad_weights_path_fails_configure_and_the_node_stays_up(tmp_path):
    domain = free_domain_id()
    missing = tmp_path / "no_such_weights.pt"
    process = NodeProcess([*FAST, "-p", f"weights:={missing}"], tmp_path / "vos_node.log", domain_id=domain)
    client = None
    try:
        client = VosClient(domain_id=domain, process=process, outputs=True)
        lifecycle = Lifecycle(client)
        assert lifecycle.state() == "unconfigured", "autostart's configure failed"
        assert not lifecycle.transition(Transition.TRANSITION_CONFIGURE), "configure fails again"
        assert lifecycle.state() == "unconfigured"
        log = process.log_path.read_text()
        assert "configure failed" in log and f"weights file '{missing}' does not exist" in log, log
        assert "Traceback" not in log
        assert client.wait(lambda: bool(client.diagnostics), 10.0)
        status = client.diagnostics[-1]
        assert status.level == ord(DiagnosticStatus.ERROR) and "does not exist" in status.message, status.message
        answer = client.reset()
        assert not answer.success and "unconfigured" in answer.message
        client.check()
        shut_down(client, lifecycle, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    finally:
        if client is not None:
            client.close()
        process.stop()


@pytest.mark.parametrize("autostart", [True, False])
def test_shutdown_from_inactive_and_autostart_in_process(matching_network, autostart):
    """In one process: autostart both ways, and shutdown from inactive releases the session."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=free_domain_id())
    node = None
    try:
        node = VosNode(
            network=matching_network,
            context=context,
            parameter_overrides=[Parameter("autostart", value=autostart)],
        )
        assert node.lifecycle_state == ("active" if autostart else "unconfigured")
        if not autostart:
            assert node.session is None, "nothing is built before configure"
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert node.lifecycle_state == "inactive"
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            assert node.lifecycle_state == "active"
        assert node.session is not None
        assert node.input_topics == ["/camera_info", "/depth", "/image"]
        node.trigger_deactivate()
        assert node.lifecycle_state == "inactive" and node.input_topics == []
        node.trigger_shutdown()
        assert node.lifecycle_state == "finalized"
        assert node.session is None and not node.processing
        assert node.snapshot().lifecycle_state == "finalized"
    finally:
        if node is not None:
            node.destroy_node()
        context.try_shutdown()
