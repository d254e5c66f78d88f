"""step_sessions: several cameras' sessions over one network, their frames batched through the backbone."""

import numpy as np
import pytest

from vos_ros.engine import InvalidImageError, NotInitializedError
from vos_ros.engine.session import Session, step_sessions
from vos_ros.model import build_network
from vos_ros.synthetic import make_clip

SIZE = (96, 128)
SHORT_SIDE = 96
FRAMES = 4


@pytest.fixture(scope="module")
def clips():
    return [make_clip(num_objects=n, num_frames=FRAMES, size=SIZE, seed=20 + n) for n in (1, 2, 3)]


def started(network, clip, short_side=SHORT_SIDE):
    session = Session(network, short_side=short_side)
    session.set_mask(clip.frames[0], clip.labels[0])
    return session


def test_batched_sessions_match_stepping_each_alone(matching_network, clips):
    """Three cameras with 1, 2 and 3 objects: same labels and objects as three sessions stepped one by one."""
    batched = [started(matching_network, clip) for clip in clips]
    alone = [started(matching_network, clip) for clip in clips]
    assert all(session.network is matching_network for session in batched)  # one network in memory
    for t in range(1, FRAMES):
        results = step_sessions(batched, [clip.frames[t] for clip in clips])
        for session, clip, result in zip(alone, clips, results):
            expected = session.step(clip.frames[t])
            assert result.frame_index == expected.frame_index == t
            agree = (result.label_map == expected.label_map).mean()
            assert agree >= 0.999, agree  # float rounding of a batched convolution may flip a tie
            assert [o.id for o in result.objects] == [o.id for o in expected.objects]
            for got, want in zip(result.objects, expected.objects):
                assert got.score == pytest.approx(want.score, abs=1e-3)
            assert result.model_ms > 0
    assert [s.object_ids for s in batched] == [[1], [1, 2], [1, 2, 3]]


def test_stored_references_keep_only_their_own_embeddings(matching_network, clips):
    """A session keeps of its frames only what matching reads, and none of a batch's other frames:
    the previous frame and the anchor hold no decoder inputs, and their keys own their memory."""
    sessions = [started(matching_network, clip) for clip in clips]
    step_sessions(sessions, [clip.frames[1] for clip in clips])
    for session in sessions:
        for reference in (session.memory.previous, *session.memory.anchors):
            frame = reference.frame
            assert frame.skip is None and frame.hidden is None
            for tensor in (frame.key, frame.instance):
                assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()


def test_frames_of_different_sizes_are_batched_per_size(matching_network, clips):
    small = make_clip(num_objects=1, num_frames=2, size=(64, 80), seed=5)
    sessions = [started(matching_network, clips[0]), started(matching_network, small)]
    results = step_sessions(sessions, [clips[0].frames[1], small.frames[1]])
    assert results[0].label_map.shape == SIZE and results[1].label_map.shape == (64, 80)
    alone = started(matching_network, small).step(small.frames[1])
    assert (results[1].label_map == alone.label_map).mean() >= 0.999


def test_one_sessions_problem_is_its_own(matching_network, clips):
    tracking = started(matching_network, clips[1])
    waiting = Session(matching_network, short_side=SHORT_SIDE)  # no mask yet
    broken = started(matching_network, clips[0])
    no_objects = started(matching_network, clips[0])
    no_objects.remove([1])
    results = step_sessions(
        [tracking, waiting, broken, no_objects],
        [clips[1].frames[1], clips[1].frames[1], np.zeros((8, 8, 3), np.uint8), clips[0].frames[1]],
    )
    assert isinstance(results[1], NotInitializedError) and isinstance(results[2], InvalidImageError)
    assert [o.id for o in results[0].objects] == [1, 2] and results[0].frame_index == 1
    assert not results[3].label_map.any() and results[3].objects == []
    assert broken.frame_index == 0, "a refused frame is not counted"


def test_bad_calls(matching_network, clips):
    session = started(matching_network, clips[0])
    with pytest.raises(ValueError, match="2 sessions but 1 images"):
        step_sessions([session, session], [clips[0].frames[1]])
    with pytest.raises(ValueError, match="only one frame per call"):
        step_sessions([session, session], [clips[0].frames[1]] * 2)
    other = started(build_network("matching", device="cpu"), clips[0])
    with pytest.raises(ValueError, match="one network"):
        step_sessions([session, other], [clips[0].frames[1]] * 2)
    assert step_sessions([], []) == []
