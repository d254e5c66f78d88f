"""The input size changing mid-stream: the objects are carried over, labels come at the new size."""

import cv2
import numpy as np
import pytest

from vos_ros.engine.session import Session
from vos_ros.synthetic import make_clip

SIZE = (120, 160)
SHORT_SIDE = 192


def resized(clip, t, size):
    height, width = size
    frame = cv2.resize(clip.frames[t], (width, height), interpolation=cv2.INTER_LINEAR)
    labels = cv2.resize(clip.labels[t], (width, height), interpolation=cv2.INTER_NEAREST)
    return frame, labels


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.mark.parametrize("new_size", [(240, 320), (150, 150), (96, 200)])
def test_objects_are_carried_over_to_a_new_size(matching_network, new_size):
    clip = make_clip(num_objects=2, num_frames=12, size=SIZE, seed=7)
    session = Session(matching_network, short_side=SHORT_SIDE)
    session.set_mask(clip.frames[0], clip.labels[0], labels=["disc", "box"])
    for t in range(1, 4):
        session.step(clip.frames[t])
    ious = {1: [], 2: []}
    for t in range(4, 10):
        frame, truth = resized(clip, t, new_size)
        result = session.step(frame)
        assert result.label_map.shape == new_size and session.frame_size == new_size
        assert [(o.id, o.label) for o in result.objects] == [(1, "disc"), (2, "box")]
        for k in ious:
            ious[k].append(iou(result.label_map == k, truth == k))
    for k, values in ious.items():
        assert np.mean(values) >= 0.5, (k, values)
    # back to the first size, and a mask appended at the new size merges with the others' last labels
    frame, truth = resized(clip, 10, new_size)
    session.set_mask(frame, np.where(truth == 2, 2, 0), append=True)
    result = session.step(clip.frames[11])
    assert result.label_map.shape == SIZE
    assert iou(result.label_map == 1, clip.labels[11] == 1) >= 0.5


def test_a_4k_frame_mid_stream(matching_network):
    clip = make_clip(num_objects=2, num_frames=3, size=SIZE, seed=7)
    session = Session(matching_network, short_side=SHORT_SIDE)
    session.set_mask(clip.frames[0], clip.labels[0])
    session.step(clip.frames[1])
    frame, truth = resized(clip, 2, (2160, 3840))
    result = session.step(frame)
    assert result.label_map.shape == (2160, 3840) and [o.id for o in result.objects] == [1, 2]
    for k in (1, 2):
        assert iou(result.label_map == k, truth == k) >= 0.5, k


@pytest.mark.parametrize("slots, size", [(1, (480, 854)), (6, (480, 854)), (6, (97, 131)), (65, (50, 70))])
def test_upsampled_labels_match_pytorch_bilinear(slots, size):
    """The label map's upsampling (OpenCV on the CPU) agrees with PyTorch's bilinear, half-pixel centres."""
    import torch
    import torch.nn.functional as F

    from vos_ros.engine.session import _upsampled_max

    generator = torch.Generator().manual_seed(slots)
    probs = torch.rand(slots, 30, 53, generator=generator) ** 4
    probs = probs / probs.sum(0, keepdim=True)
    confidence, labels = _upsampled_max(probs, size)
    full = F.interpolate(probs[None], size=size, mode="bilinear", align_corners=False)[0]
    expected_confidence, expected = full.max(0)
    assert labels.shape == size and labels.dtype == np.int32 and confidence.dtype == np.float32
    assert (labels == expected.numpy()).mean() >= 0.9999
    np.testing.assert_allclose(confidence, expected_confidence.numpy(), atol=1e-5)
