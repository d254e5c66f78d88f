"""vos_node through faults, as a separate process over real DDS: killed and restarted with
state_dir (objects come back), image stamps jumping backwards and forwards, the frame_id and the
image size changing mid-stream."""

import os
import signal
import threading
import time

import cv2
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rosgraph_msgs.msg import Clock

from vos_ros.ros.client import ClientError, VosClient, launch_node
from vos_ros.ros.convert import mask_to_labels
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.stamps import set_stamp, stamp_to_ns
from vos_ros.synthetic import make_clip

pytestmark = pytest.mark.ros  # starts vos_node processes and talks DDS

HEIGHT, WIDTH = 180, 240
SHORT_SIDE = 192  # the `matching` config needs objects several feature cells wide
NODE_ARGS = ["-p", "config:=matching", "-p", f"short_side:={SHORT_SIDE}", "-p", "diagnostics_period:=0.2"]
MIN_IOU = 0.5
FRAME_S = 1 / 30


def iou(labels: np.ndarray, truth: np.ndarray, object_id: int) -> float:
    a, b = labels == object_id, truth == object_id
    return float((a & b).sum() / max(1, (a | b).sum()))


def send(node: VosClient, rgb: np.ndarray, stamp_ns: int, frame_id: str = "camera_optical") -> np.ndarray:
    """Publish a frame with this stamp and wait for its labels (re-published if a sample was lost)."""
    for _ in range(3):
        node.publish_frame(rgb, stamp_ns, frame_id=frame_id)
        if node.wait(lambda: stamp_ns in node.labels, 10.0):
            return mask_to_labels(node.labels[stamp_ns])
    raise ClientError(f"no labels for stamp {stamp_ns}:\n{node.process.log_tail(40)}")


def log_text(node: VosClient) -> str:
    node.process.log_tail(1)  # flushes
    return node.process.log_path.read_text(errors="replace")


def set_parameter(node: VosClient, name: str, value: str) -> None:
    client = node.node.create_client(SetParameters, f"{node.node_name}/set_parameters")
    try:
        assert node.wait(client.service_is_ready, 30.0)
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        response = node.call(client, SetParameters.Request(parameters=[Parameter(name=name, value=value)]))
        assert response.results[0].successful, response.results[0].reason
    finally:
        node.node.destroy_client(client)


def test_a_killed_node_restarts_with_its_objects(tmp_path):
    clip = make_clip(num_objects=3, num_frames=30, size=(HEIGHT, WIDTH), seed=1, speed=1.5)
    state_dir = tmp_path / "state"
    args = [*NODE_ARGS, "-p", f"state_dir:={state_dir}"]
    domain = free_domain_id()
    with launch_node(args, tmp_path / "first.log", domain_id=domain, outputs=True) as node:
        _, header = node.send_frame(clip.frames[0])
        stamp = stamp_to_ns(header.stamp)
        initial = np.where(np.isin(clip.labels[0], (1, 2)), clip.labels[0], 0)
        response = node.set_initial_mask(initial, stamp, labels=["disc", "box"])
        assert response.success, response.message
        for t in range(1, 4):
            node.send_frame(clip.frames[t])
        assert (state_dir / "session.json").exists()
        os.killpg(node.process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while node.process.exit_code() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert node.process.exit_code() == -signal.SIGKILL

    with launch_node(args, tmp_path / "second.log", domain_id=domain, outputs=True) as node:
        ious = {1: [], 2: []}
        for t in range(4, 14):
            msg, header = node.send_frame(clip.frames[t])
            labels = mask_to_labels(msg)
            stamp = stamp_to_ns(header.stamp)
            objects = node.tracked(stamp).objects
            assert [(o.id, o.label) for o in objects] == [(1, "disc"), (2, "box")], t
            assert 3 not in labels
            for k in ious:
                ious[k].append(iou(labels, clip.labels[t], k))
        for k, values in ious.items():
            assert values[0] >= MIN_IOU and values[1] >= MIN_IOU, (k, values)  # resumes within 2 frames
            assert np.mean(values) >= MIN_IOU, (k, values)
        assert "restored objects [1 'disc'" in log_text(node)

        assert node.reset().success
        assert not (state_dir / "session.json").exists(), "~/reset clears the state"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with launch_node(
        NODE_ARGS, tmp_path_factory.mktemp("vos_node") / "vos_node.log", domain_id=free_domain_id(), outputs=True
    ) as client:
        yield client


@pytest.fixture(scope="module")
def clip():
    return make_clip(num_objects=2, num_frames=60, size=(HEIGHT, WIDTH), seed=4, speed=1.5)


def test_stamps_jumping_backwards_and_forwards(node, clip):
    start = time.time_ns()
    stamps = [start + round(t * FRAME_S * 1e9) for t in range(4)]
    send(node, clip.frames[0], stamps[0])
    assert node.set_initial_mask(clip.labels[0], stamps[0], labels=["disc", "box"]).success
    for t in range(1, 4):
        send(node, clip.frames[t], stamps[t])

    def track(first: int, base_ns: int) -> dict[int, list[float]]:
        ious = {1: [], 2: []}
        for t in range(first, first + 4):
            stamp = base_ns + round(t * FRAME_S * 1e9)
            labels = send(node, clip.frames[t], stamp)
            assert [(o.id, o.label) for o in node.tracked(stamp).objects] == [(1, "disc"), (2, "box")]
            for k in ious:
                ious[k].append(iou(labels, clip.labels[t], k))
        return ious

    back = track(4, start - 100 * 10**9)  # a bag loops: 100 s back
    refused = node.set_initial_mask(clip.labels[2], stamps[2])  # a mask for a frame from before the jump
    assert not refused.success and "no recent frame" in refused.message
    forward = track(8, start + 1000 * 10**9)  # a simulator skips ahead
    for ious in (back, forward):
        for k, values in ious.items():
            assert np.mean(values) >= MIN_IOU, (k, values)
    log = log_text(node)
    assert log.count("stamps jumped backwards by 99.") == 1 and log.count("stamps jumped forwards by 1100.") == 1
    diagnostics = node.latest_diagnostics()
    assert int(diagnostics["frames_processed"]) >= 12 and int(diagnostics["time_jumps"]) >= 2


def test_frame_id_and_resolution_changes(node, clip):
    base = time.time_ns() + 2000 * 10**9
    stamp = lambda t: base + round(t * FRAME_S * 1e9)  # noqa: E731
    send(node, clip.frames[12], stamp(12))
    assert node.set_initial_mask(clip.labels[12], stamp(12), labels=["disc", "box"]).success
    new_size = (270, 300)  # another aspect ratio: another network grid
    ious = {1: [], 2: []}
    for t in range(13, 19):
        frame = cv2.resize(clip.frames[t], new_size[::-1], interpolation=cv2.INTER_LINEAR)
        truth = cv2.resize(clip.labels[t], new_size[::-1], interpolation=cv2.INTER_NEAREST)
        labels = send(node, frame, stamp(t), frame_id="camera_2")
        assert labels.shape == new_size
        assert [o.id for o in node.tracked(stamp(t)).objects] == [1, 2]
        for k in ious:
            ious[k].append(iou(labels, truth, k))
    for k, values in ious.items():
        assert np.mean(values) >= MIN_IOU, (k, values)
    log = log_text(node)
    assert log.count("changed from 'camera_optical' to 'camera_2'") == 1
    assert log.count("carrying objects [1, 2] over") == 1
    assert int(node.latest_diagnostics()["resolution_changes"]) >= 1

    set_parameter(node, "on_resolution_change", "reset")
    labels = send(node, clip.frames[19], stamp(19))
    assert labels.shape == (HEIGHT, WIDTH) and not labels.any()
    assert node.tracked(stamp(19)).objects == []
    assert "forgot objects [1, 2] (on_resolution_change=reset)" in log_text(node)


def test_too_many_objects_and_a_burst_of_frames(node, clip):
    base = time.time_ns() + 3000 * 10**9
    send(node, clip.frames[20], base)
    many = (np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) % 300 + 1).astype(np.uint16)  # ids 1..300
    refused = node.set_initial_mask(many, base)
    assert not refused.success and "300 objects exceed the limit of 64" in refused.message

    assert node.set_initial_mask(clip.labels[20], base, labels=["disc", "box"]).success
    stamps = [base + (t + 1) * 1000 for t in range(300)]  # a network stall released: 300 frames at once
    for t, stamp in enumerate(stamps):
        node.publish_frame(clip.frames[21 + t % 30], stamp)
    assert node.wait(lambda: stamps[-1] in node.labels, 30.0), "the newest frame of the burst is answered"
    assert sum(s in node.labels for s in stamps) < len(stamps), "the burst was not queued frame by frame"
    labels = send(node, clip.frames[52], base + 10**9)
    assert [o.id for o in node.tracked(base + 10**9).objects] == [1, 2] and labels.shape == (HEIGHT, WIDTH)


def test_service_calls_in_a_tight_loop_while_tracking(node, clip):
    base = time.time_ns() + 4000 * 10**9
    send(node, clip.frames[30], base)
    assert node.set_initial_mask(clip.labels[30], base, labels=["disc", "box"]).success
    stop = threading.Event()
    answered = []

    def stream() -> None:
        t = 0
        while not stop.is_set():
            t += 1
            stamp = base + t * 10**7
            send(node, clip.frames[30 + t % 30], stamp)
            answered.append(stamp)

    sender = threading.Thread(target=stream)
    sender.start()
    try:
        before = len(answered)
        for _ in range(200):  # back to back, as fast as the node answers
            response = node.remove_objects([99])
            assert not response.success and "99" in response.message
        during = len(answered) - before
    finally:
        stop.set()
        sender.join()
    assert during > 0, "frames were answered while the services were called"
    assert [o.id for o in node.tracked(answered[-1]).objects] == [1, 2]


def test_clock_going_backwards_clears_the_pairing_and_tracking_goes_on(tmp_path, clip):
    with launch_node(
        [*NODE_ARGS, "-p", "use_sim_time:=true"], tmp_path / "sim.log", domain_id=free_domain_id(), outputs=True
    ) as node:
        clock = node.node.create_publisher(Clock, "/clock", 10)

        def publish_clock(seconds: float) -> None:
            msg = Clock()
            set_stamp(msg.clock, round(seconds * 1e9))
            clock.publish(msg)

        for _ in range(30):  # until the node's time source has the publisher
            publish_clock(1000.0)
            time.sleep(0.1)
        stamp = 1000 * 10**9
        send(node, clip.frames[0], stamp)
        assert node.set_initial_mask(clip.labels[0], stamp, labels=["disc", "box"]).success
        send(node, clip.frames[1], stamp + 10**8)

        deadline = time.monotonic() + 20.0
        while "/clock jumped backwards" not in log_text(node):
            assert time.monotonic() < deadline, log_text(node)[-2000:]
            publish_clock(10.0)  # the simulator resets
            time.sleep(0.2)
        assert not node.set_initial_mask(clip.labels[1], stamp + 10**8).success, "no pairing across the jump"
        labels = send(node, clip.frames[2], 10 * 10**9 + 1)
        assert [o.id for o in node.tracked(10 * 10**9 + 1).objects] == [1, 2]
        assert iou(labels, clip.labels[2], 1) >= MIN_IOU
