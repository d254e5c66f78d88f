"""Time jumps, frame_id changes and the node's state on disk, below the node (no process, no DDS)."""

import numpy as np
import pytest

from vos_ros.engine.session import Session
from vos_ros.engine.state import META_FILE
from vos_ros.ros.continuity import RESET, RESIZE, PersistentState, StreamWatch, resolution_change
from vos_ros.ros.depth_fusion import DepthFusion
from vos_ros.ros.stamp_pairing import JumpDetector
from vos_ros.synthetic import make_clip

S = 1_000_000_000


def test_jump_detector_flags_backwards_and_large_forward_steps():
    jumps = JumpDetector(max_forward_ns=5 * S)
    assert [jumps.check(t * S) for t in (10, 11, 11, 12)] == [None] * 4
    back = jumps.check(3 * S)
    assert back is not None and back.backwards and "backwards by 9.000 s" in back.describe()
    assert jumps.check(4 * S) is None
    forward = jumps.check(20 * S)
    assert forward is not None and not forward.backwards and "forwards by 16.000 s" in forward.describe()
    assert jumps.check(24 * S) is None
    jumps.forget()
    assert jumps.check(1 * S) is None
    assert JumpDetector(0).check(0) is None
    never_forward = JumpDetector(0)
    never_forward.check(1 * S)
    assert never_forward.check(10_000 * S) is None


def test_stream_watch_counts_epochs_and_reports_each_new_frame_id_once():
    watch = StreamWatch(max_forward_s=2.0)
    events = [watch.observe(t * S, frame_id) for t, frame_id in [(1, "a"), (2, "a"), (1, "a"), (9, "a"), (10, "b")]]
    assert [e.jump is not None for e in events] == [False, False, True, True, False]
    assert watch.epoch == 2 and watch.jumps == 2
    assert [e.new_frame_id for e in events] == [None, None, None, None, ("a", "b")]
    assert watch.observe(11 * S, "a").new_frame_id is None, "a frame_id seen before is not reported again"
    assert watch.observe(12 * S, "b").new_frame_id is None


class DepthMsg:
    encoding, is_bigendian, height, width = "32FC1", 0, 4, 4
    step = 16

    def __init__(self, metres: float):
        self.data = np.full((4, 4), metres, "<f4").tobytes()


def test_depth_never_pairs_across_a_jump_of_its_stamps():
    fusion = DepthFusion(slop_s=0.5, max_forward_jump_s=5.0)
    fusion.add_depth(DepthMsg(1.0), 100 * S)
    assert len(fusion._depths) == 1
    fusion.add_depth(DepthMsg(2.0), 1 * S)  # the depth stream looped
    assert fusion._depths.stamps() == [1 * S]
    fusion.add_depth(DepthMsg(2.0), 50 * S)  # forwards by more than 5 s
    assert fusion._depths.stamps() == [50 * S]
    fusion.clear()
    assert fusion._depths.stamps() == []


class Log(list):
    def __call__(self, message):
        self.append(message)


@pytest.fixture(scope="module")
def clip():
    return make_clip(num_objects=2, num_frames=4, size=(120, 160), seed=2)


def test_persistent_state_saves_restores_and_moves_a_bad_state_aside(matching_network, clip, tmp_path):
    info, warning = Log(), Log()
    persistent = PersistentState(str(tmp_path), info, warning)
    make = lambda state: Session.from_state(matching_network, state, short_side=192)  # noqa: E731
    assert persistent.restore(make) is None and "no saved state" in info[-1]

    session = Session(matching_network, short_side=192)
    session.set_mask(clip.frames[0], clip.labels[0], labels=["disc", "box"])
    persistent.save(session)
    restored = persistent.restore(make)
    assert restored.object_ids == [1, 2] and "restored objects [1 'disc' (age 0), 2 'box' (age 0)]" in info[-1]

    session.remove([1, 2])
    persistent.save(session)  # nothing tracked: nothing kept
    assert not (tmp_path / META_FILE).exists()

    session.set_mask(clip.frames[1], clip.labels[1])
    persistent.save(session)
    other = lambda state: Session.from_state(matching_network, state, short_side=256)  # noqa: E731
    assert persistent.restore(other) is None
    assert "refusing the saved state" in warning[-1] and "short_side" in warning[-1]
    assert any(".bad-" in p.name for p in tmp_path.iterdir()) and not (tmp_path / META_FILE).exists()

    persistent.save(session)
    persistent.clear()
    assert persistent.restore(make) is None

    disabled = PersistentState("", info, warning)
    disabled.save(session)
    assert disabled.restore(make) is None and not disabled.enabled


def test_resolution_change_resizes_or_resets(matching_network, clip):
    warning = Log()
    session = Session(matching_network, short_side=192)
    session.set_mask(clip.frames[0], clip.labels[0])
    assert not resolution_change(session, (120, 160), RESIZE, warning) and warning == []
    assert not resolution_change(session, (240, 320), RESIZE, warning)
    assert "160x120 -> 320x240" in warning[-1] and session.object_ids == [1, 2]
    assert resolution_change(session, (240, 320), RESET, warning)
    assert "forgot objects [1, 2]" in warning[-1] and not session.initialized


def test_any_error_restoring_a_state_starts_the_node_empty(matching_network, clip, tmp_path):
    info, warning = Log(), Log()
    persistent = PersistentState(str(tmp_path), info, warning)
    session = Session(matching_network, short_side=192)
    session.set_mask(clip.frames[0], clip.labels[0])
    persistent.save(session)

    def broken(state):
        raise RuntimeError("tensor on a vanished device")

    assert persistent.restore(broken) is None
    assert "RuntimeError: tensor on a vanished device" in warning[-1]
    assert not (tmp_path / META_FILE).exists() and len(list(tmp_path.iterdir())) == 2
