"""The node's building blocks (frame hand-over, statistics, parameters, diagnostics, messages) and the
node in-process: one network shared by nodes, parameter calls while a frame is in the model."""

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from node_harness import ANSWER_TIMEOUT_S, make_header
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import Header

from vos_ros.engine.result import ObjectResult
from vos_ros.model import CONFIGS
from vos_ros.ros.convert import labels_to_image, rgb_to_image
from vos_ros.ros.diagnostics import Snapshot, assess, diagnostic_array
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.frames import Frame, NewestFrameSlot, RecentFrames
from vos_ros.ros.messages import overlay_image, tracked_object_array
from vos_ros.ros.node import VosNode
from vos_ros.ros.parameters import PARAMETERS, SPECS
from vos_ros.ros.stats import Counters, SlidingWindow
from vos_ros.synthetic import make_clip
from vos_ros_interfaces.msg import TrackedObject
from vos_ros_interfaces.srv import SetInitialMask


def frame(stamp_ns: int, received: float | None = None) -> Frame:
    rgb = np.full((4, 6, 3), stamp_ns % 256, np.uint8)
    if received is None:
        return Frame(header=Header(), rgb=rgb, stamp_ns=stamp_ns)
    return Frame(header=Header(), rgb=rgb, stamp_ns=stamp_ns, received=received)


# frames -------------------------------------------------------------------------------------------


def test_recent_frames_find_by_stamp_and_forget_the_oldest():
    recent = RecentFrames(3)
    assert recent.find(0) is None and recent.describe() == "no frame received yet"
    for stamp in (10, 20, 30, 40):
        recent.add(frame(stamp))
    assert recent.find(10) is None, "capacity 3 keeps the newest three"
    assert recent.find(20).stamp_ns == 20
    assert recent.find(0).stamp_ns == 40, "stamp 0 means the newest frame"
    assert recent.find(25) is None
    assert "3 recent frames" in recent.describe()
    recent.resize(1)
    assert recent.find(30) is None and recent.find(40).stamp_ns == 40
    recent.clear()
    assert recent.find(0) is None


def test_recent_frames_prefer_the_newest_of_equal_stamps():
    recent = RecentFrames(5)
    first, second = frame(7), frame(7)
    recent.add(first)
    recent.add(second)
    assert recent.find(7) is second


def test_newest_slot_replaces_a_waiting_frame_and_counts_it():
    slot = NewestFrameSlot()
    assert slot.put(frame(1)) is False
    assert slot.put(frame(2)) is True
    assert slot.put(frame(3)) is True
    assert slot.dropped == 2
    assert slot.take(timeout=0.1).stamp_ns == 3
    assert slot.take(timeout=0.05) is None, "nothing waits"
    assert slot.put(frame(4)) is False, "a taken frame is not dropped"
    assert slot.dropped == 2


def test_take_newer_swaps_in_a_frame_that_arrives_in_time():
    slot = NewestFrameSlot()
    stale = frame(1)
    assert slot.take_newer(stale, timeout=0.02) is stale, "nothing came"
    timer = threading.Timer(0.05, lambda: slot.put(frame(2)))
    timer.start()
    started = time.monotonic()
    fresh = slot.take_newer(stale, timeout=2.0)
    assert fresh.stamp_ns == 2 and time.monotonic() - started < 1.0, "returns as soon as the frame arrives"
    assert slot.dropped == 1, "the stale frame was skipped"
    slot.close()
    assert slot.take_newer(stale, timeout=2.0) is stale


def test_newest_slot_discards_frames_older_than_a_mask():
    slot = NewestFrameSlot()
    slot.put(frame(5))
    slot.discard_older_than(5)
    assert slot.take(timeout=0.01).stamp_ns == 5, "the mask's own frame stays"
    slot.put(frame(4))
    slot.discard_older_than(5)
    assert slot.take(timeout=0.01) is None


def test_newest_slot_wakes_a_blocked_consumer_on_put_and_close():
    slot = NewestFrameSlot()
    taken = []
    consumer = threading.Thread(target=lambda: taken.extend([slot.take(), slot.take()]))
    consumer.start()
    time.sleep(0.05)
    slot.put(frame(9))
    time.sleep(0.05)
    slot.close()
    consumer.join(timeout=2.0)
    assert not consumer.is_alive()
    assert taken[0].stamp_ns == 9 and taken[1] is None
    slot.put(frame(10))
    assert slot.take(timeout=0.01) is None, "closed for good"


# stats --------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_sliding_window_mean_max_rate_and_expiry():
    clock = FakeClock()
    window = SlidingWindow(span=2.0, clock=clock)
    assert math.isnan(window.mean()) and math.isnan(window.max()) and window.rate() == 0.0
    for value in (10.0, 20.0, 30.0):
        window.add(value)
        clock.now += 0.5
    assert window.mean() == pytest.approx(20.0)
    assert window.max() == 30.0
    assert window.rate() == pytest.approx(2.0), "3 samples 0.5 s apart"
    clock.now += 1.2  # now 102.7: the samples at 100.0 and 100.5 are older than 2 s
    assert window.mean() == pytest.approx(30.0)
    assert window.rate() == 0.0
    clock.now += 5.0
    assert math.isnan(window.mean())


def test_counters_are_thread_safe():
    counters = Counters()
    threads = [threading.Thread(target=lambda: [counters.add("x") for _ in range(1000)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counters["x"] == 4000 and counters["never"] == 0


# parameters ---------------------------------------------------------------------------------------


def test_every_parameter_default_is_valid_and_described():
    for spec in PARAMETERS:
        assert spec.problem(spec.default) is None, spec.name
        descriptor = spec.descriptor()
        assert descriptor.name == spec.name and descriptor.description
        assert bool(descriptor.integer_range) == (spec.int_range is not None)
        assert bool(descriptor.floating_point_range) == (spec.float_range is not None)
    reload_needed = {"config", "weights", "device", "short_side", "max_objects", "torch_threads"}
    assert reload_needed <= {spec.name for spec in PARAMETERS if spec.read_only}


def test_every_parameter_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "node.md").read_text()
    documented = {line.split("`")[1] for line in doc.splitlines() if line.startswith("| `")}
    assert {spec.name for spec in PARAMETERS} <= documented


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("config", "huge", "unknown config 'huge'"),
        ("weights", "/no/such/file.pt", "does not exist"),
        ("device", "gpu0", "is not auto, cpu, cuda or cuda:N"),
        ("overlay_alpha", 1.5, "outside [0.0, 1.0]"),
        ("lost_threshold", -0.1, "outside [0.0, 1.0]"),
        ("max_objects", 0, "outside [1, 65535]"),
        ("max_objects", 8.0, "must be of type int"),
        ("short_side", 8, "too small"),
        ("frame_buffer_size", 0, "outside"),
        ("diagnostics_period", 0.0, "outside"),
        ("overlay_alpha", "half", "must be of type float"),
    ],
)
def test_invalid_values_are_rejected_with_a_reason(name, value, reason):
    assert reason in SPECS[name].problem(value)


@pytest.mark.parametrize(
    "name, value",
    [("config", name) for name in CONFIGS]
    + [
        ("device", "cpu"),
        ("device", "cuda:1"),
        ("short_side", 0),
        ("short_side", 192),
        ("overlay_alpha", 0.0),
        ("weights", ""),
    ],
)
def test_valid_values_pass(name, value):
    assert SPECS[name].problem(value) is None


# diagnostics --------------------------------------------------------------------------------------


def snapshot(**changes) -> Snapshot:
    values = dict(
        device="cpu",
        model_ms=40.0,
        input_delay_ms=2.0,
        queue_ms=5.0,
        latency_ms=50.0,
        latency_max_ms=70.0,
        input_hz=30.0,
        output_hz=20.0,
        seconds_since_input=0.1,
        frames_received=100,
        frames_processed=60,
        frames_dropped=38,
        bad_frames=2,
        overlays_published=0,
        objects_tracked=2,
        objects_visible=1,
    )
    values.update(changes)
    return Snapshot(**values)


def test_assess_warns_without_input_and_reports_tracking():
    assert assess(snapshot(), 2.0) == (DiagnosticStatus.OK, "tracking 2 objects (1 visible)")
    assert assess(snapshot(objects_tracked=0), 2.0)[1].startswith("waiting for objects")
    level, message = assess(snapshot(seconds_since_input=3.5), 2.0)
    assert level == DiagnosticStatus.WARN and "3.5 s" in message
    level, message = assess(snapshot(seconds_since_input=math.inf), 2.0)
    assert level == DiagnosticStatus.WARN and "yet" in message


def test_diagnostic_array_holds_every_figure():
    stamp = Header().stamp
    stamp.sec = 5
    array = diagnostic_array(snapshot(model_ms=math.nan), "/cam/vos_node: segmentation", 2.0, stamp)
    assert array.header.stamp.sec == 5
    (status,) = array.status
    assert status.name == "/cam/vos_node: segmentation" and status.hardware_id == "cpu"
    values = {kv.key: kv.value for kv in status.values}
    assert values["model_ms"] == "nan"
    assert values["latency_ms"] == "50.00"
    assert values["frames_dropped"] == "38"
    assert set(values) == set(Snapshot.__dataclass_fields__)


# messages -----------------------------------------------------------------------------------------


def test_tracked_object_array_sorts_by_id_and_maps_every_field():
    header = Header(frame_id="cam")
    objects = [
        ObjectResult(
            id=7, label="cup", score=0.8, area=12, bbox=(3, 4, 5, 6), centroid=(5.5, 6.5), visible=True, age=9
        ),
        ObjectResult(
            id=2, label="", score=0.1, area=0, bbox=(0, 0, 0, 0), centroid=(math.nan, math.nan), visible=False, age=1
        ),
    ]
    msg = tracked_object_array(objects, header)
    assert msg.header == header
    lost, cup = msg.objects
    assert (cup.id, cup.label, cup.area, cup.age, cup.state) == (7, "cup", 12, 9, TrackedObject.TRACKING)
    assert cup.score == pytest.approx(0.8)
    assert (cup.bbox.x_offset, cup.bbox.y_offset, cup.bbox.width, cup.bbox.height) == (3, 4, 5, 6)
    assert (cup.centroid_x, cup.centroid_y) == (5.5, 6.5)
    assert lost.id == 2 and lost.state == TrackedObject.LOST and math.isnan(lost.centroid_x)
    for obj in msg.objects:
        assert math.isnan(obj.position.x) and math.isnan(obj.position.y) and math.isnan(obj.position.z)


def test_overlay_image_tints_objects_only():
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    labels = np.zeros((6, 8), np.uint16)
    labels[1:3, 2:5] = 1
    labels[4, 6] = 300  # ids beyond the palette still get a colour
    header = Header(frame_id="cam")
    msg = overlay_image(rgb, labels, 0.5, header)
    assert (msg.encoding, msg.height, msg.width, msg.header) == ("rgb8", 6, 8, header)
    out = np.frombuffer(bytes(msg.data), np.uint8).reshape(6, 8, 3)
    np.testing.assert_array_equal(out[labels == 0], rgb[labels == 0])
    assert np.any(out[labels != 0] != rgb[labels != 0], axis=1).all()
    assert bytes(overlay_image(rgb, labels, 0.0, header).data) == rgb.tobytes(), "alpha 0 shows the image"


# one network, several nodes -----------------------------------------------------------------------


def test_nodes_in_one_process_share_one_network(matching_network):
    context = Context()
    rclpy.init(context=context, domain_id=free_domain_id())
    nodes = []
    try:
        nodes = [VosNode(network=matching_network, context=context, namespace=ns) for ns in ("front", "rear")]
        assert [n.get_fully_qualified_name() for n in nodes] == ["/front/vos_node", "/rear/vos_node"]
        sessions = [n._session for n in nodes]
        assert sessions[0] is not sessions[1], "one session per stream"
        assert sessions[0].network is sessions[1].network is matching_network
        assert [n.snapshot().device for n in nodes] == ["cpu", "cpu"]
    finally:
        for node in nodes:
            node.destroy_node()
        context.try_shutdown()


def _processed_reaches(node: VosNode, count: int) -> bool:
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while node._counters["frames_processed"] < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return node._counters["frames_processed"] >= count


def test_parameter_services_answer_while_a_frame_is_in_the_model(matching_network):
    """Inference runs on the worker thread, so a frame held inside the model delays no parameter
    call, not even of the parameters the session holds: those reach it before the next frame."""
    context = Context()
    rclpy.init(context=context, domain_id=free_domain_id())
    node = VosNode(network=matching_network, context=context)
    caller = rclpy.create_node("parameter_caller", context=context)
    executor = MultiThreadedExecutor(context=context)
    for n in (node, caller):
        executor.add_node(n)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    inside, release = threading.Event(), threading.Event()
    try:
        clip = make_clip(num_objects=2, num_frames=3, size=(96, 128), seed=0)
        first = make_header(1_000_000_000)
        node._on_image(rgb_to_image(clip.frames[0], first))
        answer = node._on_set_initial_mask(
            SetInitialMask.Request(mask=labels_to_image(clip.labels[0], first)), SetInitialMask.Response()
        )
        assert answer.success, answer.message
        step = node._session.step

        def held_step(rgb):
            inside.set()
            release.wait(ANSWER_TIMEOUT_S)
            return step(rgb)

        node._session.step = held_step
        node._on_image(rgb_to_image(clip.frames[1], make_header(2_000_000_000)))
        assert inside.wait(ANSWER_TIMEOUT_S), "the worker takes the frame into the model"
        processed = node._counters["frames_processed"]

        setter = caller.create_client(SetParameters, "/vos_node/set_parameters")
        assert setter.wait_for_service(ANSWER_TIMEOUT_S)
        changes = [("overlay_alpha", 0.25), ("lost_threshold", 0.6), ("drop_fragments", False)]
        request = SetParameters.Request(parameters=[Parameter(n, value=v).to_parameter_msg() for n, v in changes])
        answered = threading.Event()
        future = setter.call_async(request)
        future.add_done_callback(lambda _: answered.set())
        assert answered.wait(ANSWER_TIMEOUT_S / 2), "set_parameters waited for the frame in the model"
        assert all(result.successful for result in future.result().results)
        assert all(node.get_parameter(name).value == value for name, value in changes)
        assert node._counters["frames_processed"] == processed, "the frame was still in the model"

        assert (node._session.lost_threshold, node._session.fragment_filter is None) == (0.3, False)

        release.set()
        assert _processed_reaches(node, processed + 1), "the held frame's labels came out"
        node._on_image(rgb_to_image(clip.frames[2], make_header(3_000_000_000)))
        assert _processed_reaches(node, processed + 2)
        assert (node._session.lost_threshold, node._session.fragment_filter is None) == (0.6, True)
    finally:
        release.set()
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
        node.destroy_node()
        caller.destroy_node()
        context.try_shutdown()
