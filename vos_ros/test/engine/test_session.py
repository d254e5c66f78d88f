"""The session API on synthetic clips: accuracy, stable ids, add/remove/reset, bad input."""

import warnings

import numpy as np
import pytest

from vos_ros.engine import (
    InvalidImageError,
    InvalidMaskError,
    NotInitializedError,
    TooManyObjectsError,
    UnknownObjectError,
)
from vos_ros.engine.session import Session
from vos_ros.synthetic import make_clip

SIZE = (120, 160)


def _iou(a, b):
    union = (a | b).sum()
    return (a & b).sum() / union if union else 1.0


@pytest.fixture(scope="module")
def clip():
    return make_clip(num_objects=2, num_frames=20, size=SIZE, seed=3)


@pytest.fixture
def session(matching_network):
    return Session(matching_network, short_side=192)


def test_matching_keeps_two_objects_over_twenty_frames(matching_network):
    clip = make_clip(num_objects=2, num_frames=20, size=(240, 320), seed=0)
    session = Session(matching_network)
    assert session.set_mask(clip.frames[0], clip.labels[0]) == [1, 2]
    ious = {1: [], 2: []}
    for t in range(1, 20):
        result = session.step(clip.frames[t])
        assert result.label_map.dtype == np.uint16 and result.label_map.shape == (240, 320)
        for k in ious:
            ious[k].append(_iou(result.label_map == k, clip.labels[t] == k))
    for k, values in ious.items():
        assert np.mean(values) >= 0.7, (k, values)


def test_result_describes_each_object(session, clip):
    session.set_mask(clip.frames[0], clip.labels[0], labels=["ball", "box"])
    result = session.step(clip.frames[1])
    assert [o.id for o in result.objects] == [1, 2]
    for obj in result.objects:
        mask = result.label_map == obj.id
        ys, xs = np.nonzero(mask)
        assert obj.area == mask.sum() > 0
        assert obj.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        assert obj.centroid == pytest.approx((xs.mean(), ys.mean()))
        assert 0.3 <= obj.score <= 1.0 and obj.visible and obj.age == 1
    assert [o.label for o in result.objects] == ["ball", "box"]
    assert result.object(2).label == "box"


def test_ids_are_the_users_pixel_values_and_stay_stable(session, clip):
    labels = np.where(clip.labels[0] == 1, 7, np.where(clip.labels[0] == 2, 300, 0)).astype(np.uint16)
    assert session.set_mask(clip.frames[0], labels) == [7, 300]
    assert set(np.unique(session.step(clip.frames[1]).label_map)) <= {0, 7, 300}
    assert session.remove([7]) == [7]
    result = session.step(clip.frames[2])
    assert session.object_ids == [300]
    assert set(np.unique(result.label_map)) <= {0, 300}
    assert _iou(result.label_map == 300, clip.labels[2] == 2) > 0.6


def test_append_adds_objects_mid_stream_without_renumbering(session):
    clip = make_clip(num_objects=3, num_frames=8, size=SIZE, seed=5)
    first = np.where(clip.labels[0] == 3, 0, clip.labels[0]).astype(np.uint16)
    session.set_mask(clip.frames[0], first, labels={1: "a", 2: "b"})
    for t in (1, 2):
        session.step(clip.frames[t])
    added = np.where(clip.labels[3] == 3, 3, 0).astype(np.uint16)
    assert session.set_mask(clip.frames[3], added, labels=["c"], append=True) == [3]
    assert session.object_ids == [1, 2, 3]
    for t in range(4, 8):
        result = session.step(clip.frames[t])
    assert [o.label for o in result.objects] == ["a", "b", "c"]
    for k in (1, 2, 3):
        assert _iou(result.label_map == k, clip.labels[7] == k) > 0.5, k
    assert result.object(3).age == 4 and result.object(1).age == 6


def test_memory_stays_bounded_over_many_masks_and_frames(session, clip):
    session.set_mask(clip.frames[0], clip.labels[0])
    for t in range(1, 12):
        session.set_mask(clip.frames[t], clip.labels[t], append=True)
        session.step(clip.frames[t])
    assert len(session.memory.anchors) == session.network.config.max_anchors
    assert session.memory.previous is not None


def test_reset_forgets_everything(session, clip):
    session.set_mask(clip.frames[0], clip.labels[0])
    session.step(clip.frames[1])
    session.reset()
    assert session.object_ids == [] and not session.initialized
    with pytest.raises(NotInitializedError):
        session.step(clip.frames[2])
    session.set_mask(clip.frames[2], clip.labels[2])
    assert session.step(clip.frames[3]).frame_index == 1


def test_removing_every_object_gives_empty_labels(session, clip):
    session.set_mask(clip.frames[0], clip.labels[0])
    session.remove([1, 2])
    result = session.step(clip.frames[1])
    assert result.objects == [] and not result.label_map.any()


BAD_CALLS = [
    ("step before set_mask", lambda s, c: Session(s.network).step(c.frames[1]), NotInitializedError),
    ("grey image", lambda s, c: s.step(c.frames[1][..., 0]), InvalidImageError),
    ("float image", lambda s, c: s.step(c.frames[1].astype(np.float32)), InvalidImageError),
    ("list image", lambda s, c: s.step(c.frames[1].tolist()), InvalidImageError),
    ("tiny image", lambda s, c: s.step(c.frames[1][:8, :8]), InvalidImageError),
    ("mask size", lambda s, c: s.set_mask(c.frames[1], c.labels[1][:-1]), InvalidMaskError),
    ("empty mask", lambda s, c: s.set_mask(c.frames[1], np.zeros(SIZE, np.uint8)), InvalidMaskError),
    ("float mask", lambda s, c: s.set_mask(c.frames[1], c.labels[1].astype(np.float32)), InvalidMaskError),
    ("3-D mask", lambda s, c: s.set_mask(c.frames[1], c.frames[1]), InvalidMaskError),
    ("negative id", lambda s, c: s.set_mask(c.frames[1], c.labels[1].astype(np.int32) * -1), TooManyObjectsError),
    ("id too big", lambda s, c: s.set_mask(c.frames[1], c.labels[1].astype(np.int64) * 70000), TooManyObjectsError),
    (
        "too many ids",
        lambda s, c: s.set_mask(c.frames[1], np.arange(SIZE[0] * SIZE[1]).reshape(SIZE) % 70),
        TooManyObjectsError,
    ),
    ("label count", lambda s, c: s.set_mask(c.frames[1], c.labels[1], labels=["only one"]), InvalidMaskError),
    ("label id", lambda s, c: s.set_mask(c.frames[1], c.labels[1], labels={9: "x"}), InvalidMaskError),
    ("remove unknown", lambda s, c: s.remove([1, 42]), UnknownObjectError),
    ("remove a non-integer id", lambda s, c: s.remove(["cup"]), UnknownObjectError),
]


@pytest.mark.parametrize("name,call,error", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_input_raises_and_leaves_session_usable(name, call, error, session, clip):
    session.set_mask(clip.frames[0], clip.labels[0], labels=["a", "b"])
    before = session.step(clip.frames[1])
    with pytest.raises(error) as raised:
        call(session, clip)
    assert str(raised.value)
    assert session.object_ids == [1, 2]
    after = session.step(clip.frames[2])
    assert [o.label for o in after.objects] == ["a", "b"]
    assert after.frame_index == before.frame_index + 1
    for k in (1, 2):
        assert _iou(after.label_map == k, clip.labels[2] == k) > 0.6


def test_object_appended_later_keeps_being_tracked(matching_network):
    """Anchors made before an append saw the new object as background; it must not fade away."""
    clip = make_clip(num_objects=3, num_frames=14, size=(180, 240), seed=1)
    session = Session(matching_network, short_side=192)
    session.set_mask(clip.frames[0], np.where(clip.labels[0] == 3, 0, clip.labels[0]).astype(np.uint16))
    session.step(clip.frames[1])
    session.set_mask(clip.frames[2], np.where(clip.labels[2] == 3, 3, 0).astype(np.uint16), append=True)
    for t in range(3, 14):
        result = session.step(clip.frames[t])
    assert _iou(result.label_map == 3, clip.labels[13] == 3) > 0.35


def test_read_only_frames_at_the_network_scale_are_used_without_warnings(matching_network, clip):
    # camera buffers arrive as read-only arrays; at the network's own scale they are not resized
    session = Session(matching_network, short_side=min(SIZE))
    frames = clip.frames.copy()
    frames.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        session.set_mask(frames[0], clip.labels[0])
        result = session.step(frames[1])
    assert _iou(result.label_map == 1, clip.labels[1] == 1) > 0.5
