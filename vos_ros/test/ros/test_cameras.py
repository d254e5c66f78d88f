"""Several cameras in one vos_node, in this process: one network object for all the cameras' sessions,
per-camera services, frames of several cameras stepped as one batch, a camera without frames never
waited for, and camera names checked on configure with a clear reason."""

import threading

import numpy as np
import pytest
from in_process import give_objects, wait_for
from rclpy.parameter import Parameter

from vos_ros.engine import session as engine_session
from vos_ros.ros import node as vos_node
from vos_ros.ros.client import ANSWER_TIMEOUT_S
from vos_ros.ros.convert import rgb_to_image
from vos_ros.ros.frames import Frame, FrameBoard
from vos_ros.ros.node import VosNode
from vos_ros.ros.parameters import SPECS, camera_names_problem
from vos_ros.ros.stamps import make_header
from vos_ros.synthetic import make_clip

pytestmark = pytest.mark.ros  # creates ROS nodes

SIZE = (96, 128)


def frame(stamp_ns: int) -> Frame:
    return Frame(header=make_header(stamp_ns), rgb=np.zeros((*SIZE, 3), np.uint8), stamp_ns=stamp_ns)


def make_node(context, network=None, **params) -> VosNode:
    params.setdefault("use_depth", False)
    overrides = [Parameter(name, value=value) for name, value in params.items()]
    return VosNode(network=network, context=context, parameter_overrides=overrides)


# camera names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names, reason",
    [
        ([""], "cameras[0] is empty"),
        (["front", ""], "cameras[1] is empty"),
        (["front", "rear", "front"], "name front more than once"),
        (["front/left"], "'front/left' is not a valid ROS name token"),
        (["1st"], "'1st' is not a valid ROS name token"),
        (["rear cam"], "'rear cam' is not a valid ROS name token"),
        (["front__left"], "'front__left' is not a valid ROS name token"),
        (["~front"], "is not a valid ROS name token"),
    ],
)
def test_bad_camera_names_are_refused_with_a_reason(names, reason):
    assert reason in camera_names_problem(names)
    assert reason in SPECS["cameras"].problem(names)


@pytest.mark.parametrize("names", [[], ["front"], ["front", "rear"], ["wrist_left", "wrist_right", "Cam2"]])
def test_good_camera_names_pass(names):
    assert camera_names_problem(names) is None
    assert SPECS["cameras"].problem(names) is None
    assert SPECS["cameras"].problem(None) is None, "unset (as ROS leaves an empty string array) is the default"


@pytest.mark.parametrize(
    "names, reason",
    [
        (["front", "front"], "more than once"),
        (["front", ""], "empty"),
        (["a/b"], "ROS name token"),
        ([1, 2], "cameras[0] is 1, not a name"),
    ],
)
def test_configure_fails_with_the_reason_for_bad_camera_names(context, matching_network, names, reason):
    node = make_node(context, matching_network, cameras=names)
    try:
        assert node.lifecycle_state == "unconfigured"
        assert reason in node.snapshot().configure_error
        assert node.session is None and node.cameras == []
        assert not any(
            "set_initial_mask" in name
            for name, _ in node.get_service_names_and_types_by_node(node.get_name(), node.get_namespace())
        ), "no camera services without usable names"
    finally:
        node.destroy_node()


# one network, per-camera names -----------------------------------------------------------------


def test_cameras_share_the_one_network_the_node_builds(context):
    node = make_node(context, cameras=["front", "rear"], config="matching")
    try:
        assert node.lifecycle_state == "active", node.snapshot().configure_error
        assert node.cameras == ["front", "rear"]
        front, rear = node.camera("front").session, node.camera("rear").session
        assert front is not rear, "one session per camera"
        assert front.network is rear.network is node._network, "one network object for both cameras"
        assert node.session is front
        assert node.input_topics == ["/front/image", "/rear/image"]
        services = {name for name, _ in node.get_service_names_and_types_by_node("vos_node", "/")}
        for camera in ("front", "rear"):
            for service in ("set_initial_mask", "add_objects", "remove_objects", "reset"):
                assert f"/vos_node/{camera}/{service}" in services
        assert "/vos_node/set_initial_mask" not in services
        publishers = {name for name, _ in node.get_publisher_names_and_types_by_node("vos_node", "/")}
        for camera in ("front", "rear"):
            for topic in ("labels", "tracked_objects", "overlay", "overlay/compressed"):
                assert f"/vos_node/{camera}/{topic}" in publishers
        with pytest.raises(KeyError, match="no camera 'side'"):
            node.camera("side")
    finally:
        node.destroy_node()


def test_one_unnamed_camera_keeps_the_historic_names(context, matching_network):
    node = make_node(context, matching_network)
    try:
        assert node.cameras == [""]
        assert node.input_topics == ["/image"]
        services = {name for name, _ in node.get_service_names_and_types_by_node("vos_node", "/")}
        assert {"/vos_node/set_initial_mask", "/vos_node/remove_objects", "/vos_node/reset"} <= services
        assert node.camera_values() == [], "no per-camera values for one camera"
    finally:
        node.destroy_node()


def test_state_dir_has_a_subfolder_per_camera(context, matching_network, tmp_path):
    node = make_node(context, matching_network, cameras=["front", "rear"], state_dir=str(tmp_path))
    try:
        give_objects(node, make_clip(num_objects=2, num_frames=2, size=SIZE, seed=0), camera="rear")
        assert (tmp_path / "rear").is_dir() and any((tmp_path / "rear").iterdir())
        assert not (tmp_path / "front").exists(), "the front camera has no objects to keep"
    finally:
        node.destroy_node()


# batching and fairness -------------------------------------------------------------------------


def test_frame_board_takes_every_waiting_camera_and_never_waits_for_a_quiet_one():
    board = FrameBoard(3)
    board.slots[0].put(frame(1))
    assert [(i, f.stamp_ns) for i, f in board.take_waiting(timeout=ANSWER_TIMEOUT_S)] == [(0, 1)]
    board.slots[2].put(frame(5))
    board.slots[0].put(frame(2))
    board.slots[0].put(frame(3))  # newest wins per camera
    assert [(i, f.stamp_ns) for i, f in board.take_waiting(timeout=ANSWER_TIMEOUT_S)] == [(0, 3), (2, 5)]
    assert [s.dropped for s in board.slots] == [1, 0, 0]
    assert board.take_waiting(timeout=0.01) == [], "nothing waiting: an empty batch after the timeout"
    woke = []
    consumer = threading.Thread(target=lambda: woke.append(board.take_waiting()))
    consumer.start()
    board.slots[1].put(frame(7))
    consumer.join(ANSWER_TIMEOUT_S)
    assert [(i, f.stamp_ns) for i, f in woke[0]] == [(1, 7)], "a frame of any camera wakes the worker"
    board.close()
    assert board.take_waiting() is None and board.slots[0].take() is None


def _start_two_cameras(node, frames: int) -> dict:
    """Front (2 objects) and rear (3 objects) clips, each camera's first frame and mask given; waits until
    both first frames are processed."""
    clips = {"front": make_clip(2, frames, SIZE, seed=1), "rear": make_clip(3, frames, SIZE, seed=2)}
    for index, (camera, clip) in enumerate(clips.items()):
        give_objects(node, clip, camera, stamp_ns=1_000_000_000 + index)
    front, rear = node.camera("front"), node.camera("rear")
    assert wait_for(lambda: front.count("frames_processed") >= 1 and rear.count("frames_processed") >= 1)
    return clips


def _one_round_of_both(node, clips) -> None:
    """Front frames 1 and 2 and rear frame 1, arranged so that front 2 and rear 1 wait for the same round:
    front 1 is processed first; then both cameras are busy (their locks held, as by services) while front 2
    and rear 1 arrive, so the worker hands both back to their slots together until the locks are free."""
    front, rear = node.camera("front"), node.camera("rear")
    node.receive_image(rgb_to_image(clips["front"].frames[1], make_header(2_000_000_000)), "front")
    assert wait_for(lambda: front.count("frames_processed") >= 2)
    with front.lock, rear.lock:
        node.receive_image(rgb_to_image(clips["front"].frames[2], make_header(3_000_000_000)), "front")
        deferred = rear.count("frames_deferred")
        node.receive_image(rgb_to_image(clips["rear"].frames[1], make_header(3_000_000_001)), "rear")
        # the worker takes every waiting frame at once, so once it has handed rear 1 back it holds both
        assert wait_for(lambda: rear.count("frames_deferred") > deferred), "busy cameras are handed back"
    assert wait_for(lambda: front.count("frames_processed") >= 3 and rear.count("frames_processed") >= 2)


@pytest.mark.parametrize("max_batch, batches_expected", [(2, [2]), (64, [2]), (1, []), (0, [])])  # 0: CPU -> 1
def test_frames_waiting_on_two_cameras_go_through_one_batched_step(
    context, matching_network, monkeypatch, max_batch, batches_expected
):
    batches = []
    real = engine_session.step_sessions

    def recording(sessions, images):
        batches.append(len(sessions))
        return real(sessions, images)

    monkeypatch.setattr(vos_node, "step_sessions", recording)
    node = make_node(context, matching_network, cameras=["front", "rear"], short_side=96, max_batch=max_batch)
    try:
        _one_round_of_both(node, _start_two_cameras(node, frames=4))
        front, rear = node.camera("front"), node.camera("rear")
        # the front and rear frames waiting together went through one step_sessions call (max_batch 1, or 0 on a
        # CPU: one by one)
        assert batches == batches_expected
        assert front.objects_tracked == 2 and rear.objects_tracked == 3
        values = dict(node.camera_values())
        assert values["cameras"] == "front,rear"
        assert values["front/frames_processed"] == 3 and values["rear/frames_processed"] == 2
        assert values["front/objects_tracked"] == 2 and values["rear/objects_tracked"] == 3
        kept = [front.recent.nbytes() / 1e6, rear.recent.nbytes() / 1e6]
        assert kept[0] > 0 and kept[1] > 0, "the recent frames of the stamp lookups are reported"
        assert [values["front/frame_buffer_mb"], values["rear/frame_buffer_mb"]] == kept
        assert node.snapshot().frame_buffer_mb == pytest.approx(sum(kept))
    finally:
        node.destroy_node()


@pytest.mark.parametrize("camera_threads, concurrent", [(2, True), (1, False)])
def test_a_rounds_frames_step_on_parallel_threads_on_a_cpu(
    context, matching_network, monkeypatch, camera_threads, concurrent
):
    """With camera_threads 2 the front and rear frames of one round step at the same time on two threads
    (each waits at a barrier for the other); with 1 they step one after the other on one thread."""
    barrier = threading.Barrier(2, timeout=2.0)
    threads, met, meet = [], [], set()  # meet: the bytes of the two frames that wait for one round
    real = engine_session.Session.step

    def meeting(self, image, *args, **kwargs):
        if np.asarray(image).tobytes() in meet:
            threads.append(threading.current_thread().name)
            try:
                barrier.wait()
                met.append(True)
            except threading.BrokenBarrierError:
                met.append(False)
        return real(self, image, *args, **kwargs)

    monkeypatch.setattr(engine_session.Session, "step", meeting)
    node = make_node(
        context, matching_network, cameras=["front", "rear"], short_side=96, max_batch=1, camera_threads=camera_threads
    )
    try:
        clips = _start_two_cameras(node, frames=3)
        meet.update({clips["front"].frames[2].tobytes(), clips["rear"].frames[1].tobytes()})
        _one_round_of_both(node, clips)
        front, rear = node.camera("front"), node.camera("rear")
        assert len(threads) == 2
        if concurrent:
            assert met == [True, True] and len(set(threads)) == 2 and all(n.startswith("vos-round") for n in threads)
        else:
            assert met == [False, False] and len(set(threads)) == 1
        assert front.objects_tracked == 2 and rear.objects_tracked == 3
    finally:
        node.destroy_node()


def test_a_camera_busy_with_a_service_never_stalls_the_other(context, matching_network):
    """While a service holds the front camera (its lock, as a mask or prompt does), the rear camera's frames
    are processed; the front frame that waited is processed once the service is done, and a newer front
    frame replaces it while it waits (newest frame wins)."""
    node = make_node(context, matching_network, cameras=["front", "rear"], short_side=96)
    try:
        clips = _start_two_cameras(node, frames=5)
        front, rear = node.camera("front"), node.camera("rear")
        with front.lock:
            node.receive_image(rgb_to_image(clips["front"].frames[1], make_header(5_000_000_000)), "front")
            for t in range(1, 4):
                node.receive_image(rgb_to_image(clips["rear"].frames[t], make_header((5 + t) * 1_000_000_000)), "rear")
                assert wait_for(lambda t=t: rear.count("frames_processed") >= 1 + t), f"rear frame {t} waited"
            assert front.count("frames_processed") == 1 and front.count("frames_deferred") >= 1
            node.receive_image(rgb_to_image(clips["front"].frames[2], make_header(9_000_000_000)), "front")
        assert wait_for(lambda: front.count("frames_processed") >= 2)
        assert front.count("frames_processed") == 2, "the older front frame was replaced while it waited"
        assert front.slot.dropped >= 1 and rear.objects_tracked == 3 and front.objects_tracked == 2
    finally:
        node.destroy_node()


def test_a_camera_without_frames_never_delays_the_other(context, matching_network):
    node = make_node(context, matching_network, cameras=["front", "rear"], short_side=96)
    try:
        clip = make_clip(2, 6, SIZE, seed=3)
        give_objects(node, clip, camera="front")
        # the mask's frame first (the worker may have held it while the service ran: a newer one would win)
        assert wait_for(lambda: node.camera("front").count("frames_processed") >= 1)
        for t in range(1, 6):  # the rear camera never sends a frame
            node.receive_image(rgb_to_image(clip.frames[t], make_header((1 + t) * 1_000_000_000)), camera="front")
            assert wait_for(lambda t=t: node.camera("front").count("frames_processed") >= t + 1)
        assert node.camera("rear").count("frames_processed") == 0
        snapshot = node.snapshot()
        assert snapshot.quietest_camera == "rear"
        assert dict(node.camera_values())["rear/frames_received"] == 0
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    "requested, cameras, device, torch_threads, cores, expected",
    [
        (0, 2, "cpu", 1, 2, 2),  # 2 cores, 1 torch thread: both cameras at once
        (0, 4, "cpu", 1, 2, 2),  # never more threads than cores allow
        (0, 4, "cpu", 2, 8, 4),
        (0, 1, "cpu", 1, 8, 1),  # one camera: one thread
        (0, 4, "cuda:0", 1, 8, 1),  # a GPU batches instead
        (3, 2, "cpu", 1, 2, 2),  # asked for: at most one per camera
        (1, 4, "cpu", 1, 8, 1),
    ],
)
def test_round_threads(monkeypatch, requested, cameras, device, torch_threads, cores, expected):
    monkeypatch.setattr(vos_node.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert vos_node.round_threads(requested, cameras, device, torch_threads) == expected
