"""The stray-fragment filter: which detached pieces of an object are dropped, alone and in a session."""

import numpy as np
import pytest
import torch

from vos_ros.engine.fragments import FragmentFilter
from vos_ros.engine.session import Session
from vos_ros.model.configs import get_config
from vos_ros.model.network import EncodedFrame, Segmentation


def _paint(*regions, shape=(40, 60)):
    """A label map with each (index expression, object id) region painted in order."""
    labels = np.zeros(shape, dtype=np.uint16)
    for where, object_id in regions:
        labels[where] = object_id
    return labels


OLD = np.s_[10:20, 10:20]


def test_small_piece_far_from_the_previous_region_is_stray():
    moved, far = np.s_[11:21, 12:22], np.s_[30:33, 50:53]
    stray = FragmentFilter(radius=2, min_fraction=0.3).stray(_paint((moved, 1), (far, 1)), _paint((OLD, 1)))
    assert stray[far].all()
    assert not stray[moved].any()
    assert stray.sum() == 9


def test_piece_near_the_previous_region_or_large_enough_is_kept():
    near = np.s_[10:13, 23:26]  # 3 px from the previous region
    large = np.s_[25:35, 40:48]  # far, but 80% of the largest piece
    current, previous = _paint((OLD, 1), (near, 1), (large, 1)), _paint((OLD, 1))
    assert not FragmentFilter(radius=4, min_fraction=0.3).stray(current, previous).any()
    stray = FragmentFilter(radius=1, min_fraction=0.3).stray(current, previous)
    assert stray[near].all() and not stray[large].any()


def test_largest_piece_is_kept_even_when_the_object_moved_far():
    largest, small = np.s_[30:40, 40:50], np.s_[20:22, 20:22]
    stray = FragmentFilter(radius=1).stray(_paint((largest, 1), (small, 1)), _paint((np.s_[0:5, 0:5], 1)))
    assert not stray[largest].any()
    assert stray[small].all()


def test_objects_missing_from_the_previous_frame_keep_every_piece():
    current = _paint((np.s_[20:30, 20:30], 1), (np.s_[35:37, 55:57], 1))
    assert not FragmentFilter().stray(current, _paint((np.s_[0:10, 0:10], 2))).any()


def test_each_object_is_judged_against_its_own_previous_region():
    objects = ((np.s_[5:15, 5:15], 1), (np.s_[5:15, 40:50], 2))
    inside_two = np.s_[6:8, 42:44]  # a piece of object 1 inside object 2's old region: far from 1
    stray = FragmentFilter(radius=2).stray(_paint(*objects, (inside_two, 1)), _paint(*objects))
    assert stray[inside_two].all()
    assert stray.sum() == 4


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="radius"):
        FragmentFilter(radius=-1)
    with pytest.raises(ValueError, match="min_fraction"):
        FragmentFilter(min_fraction=1.5)
    with pytest.raises(ValueError, match="differ in size"):
        FragmentFilter().stray(_paint(shape=(4, 4)), _paint(shape=(4, 5)))


class ScriptedNetwork:
    """Stands in for the network: every ``segment`` returns the next scripted object map."""

    config = get_config("matching")
    device = torch.device("cpu")

    def __init__(self, object_maps):
        self.object_maps = list(object_maps)

    def encode(self, rgb):
        height, width = rgb.shape[-2] // 4, rgb.shape[-1] // 4
        key = torch.zeros(8, height // 2, width // 2)
        return EncodedFrame(key=key, instance=key, skip=torch.zeros(1, 1, height, width), hidden=None)

    def segment(self, frame, anchors, previous):
        objects = torch.from_numpy(self.object_maps.pop(0)).float() * 0.9
        probs = torch.stack([1.0 - objects, objects])
        return Segmentation(log_probs=probs.log(), fg_logit=objects, instance_logits=objects[None])


@pytest.mark.parametrize("fragment_filter", [FragmentFilter(radius=2), None], ids=["filter", "no-filter"])
def test_session_moves_stray_pieces_to_the_background(fragment_filter):
    image = np.zeros((64, 96, 3), dtype=np.uint8)
    first = np.zeros((64, 96), dtype=np.uint16)
    first[8:24, 8:24] = 1
    scripted = np.zeros((16, 24))
    scripted[3:7, 3:7] = 1  # where the object was (stride 4)
    scripted[12:14, 20:22] = 1  # a small piece far away
    session = Session(ScriptedNetwork([scripted]), fragment_filter=fragment_filter, short_side=64)
    session.set_mask(image, first)
    labels = session.step(image).label_map
    assert (labels[14:26, 14:26] == 1).all()
    far = labels[49:55, 81:87] == 1
    previous_far = session.memory.previous.probs[1, 6:7, 10:11]
    if fragment_filter is None:
        assert far.all() and previous_far.min() > 0.5
    else:
        assert not far.any() and previous_far.max() < 0.5
    assert torch.allclose(session.memory.previous.probs.sum(0), torch.ones(8, 12))
