"""Training clips: frame order, composites with exact labels, determinism, mask perturbation."""

import cv2
import numpy as np
import pytest

from vos_ros.synthetic import make_clip
from vos_ros.train.clips import ANCHOR, ArrayVideo, ClipSpec, make_training_clip, perturb_mask, pick_indices


def _videos():
    return [ArrayVideo(c.frames, c.labels) for c in (make_clip(1, 8, (96, 128), seed=s) for s in range(3))]


def test_pick_indices_keeps_anchor_before_previous_before_current_in_either_time_direction():
    directions = set()
    for seed in range(200):
        anchor, previous, current = pick_indices(10, np.random.default_rng(seed), max_gap=3)
        assert all(0 <= i < 10 for i in (anchor, previous, current))
        assert 1 <= abs(current - previous) <= 3
        assert (anchor <= previous < current) or (anchor >= previous > current)
        directions.add(current > previous)
    assert directions == {True, False}
    with pytest.raises(ValueError, match="at least 2 frames"):
        pick_indices(1, np.random.default_rng(0), 3)


def test_longer_clips_run_forward_or_backward_in_time_after_the_anchor():
    directions = set()
    for seed in range(200):
        indices = pick_indices(12, np.random.default_rng(seed), max_gap=3, count=5)
        anchor, run = indices[0], np.array(indices[1:])
        steps = np.diff(run)
        assert len(indices) == 5 and all(0 <= i < 12 for i in indices)
        assert np.all((np.abs(steps) >= 1) & (np.abs(steps) <= 3))
        assert np.all(steps > 0) or np.all(steps < 0)
        assert (anchor <= run[0]) if steps[0] > 0 else (anchor >= run[0])
        directions.add(bool(steps[0] > 0))
    assert directions == {True, False}
    assert len(set(pick_indices(4, np.random.default_rng(0), max_gap=5, count=5)[1:])) == 4
    with pytest.raises(ValueError, match="at least 4 frames"):
        pick_indices(3, np.random.default_rng(0), 3, count=5)


def test_clip_length_sets_the_number_of_frames_of_composites():
    spec = ClipSpec(short_side=96, crop=(64, 96), length=5, paste_weights=(0.0, 0.0, 1.0))
    clip = make_training_clip(_videos(), spec, np.random.default_rng(4))
    assert clip.frames.shape == (5, 64, 96, 3) and clip.labels.shape == (5, 64, 96)
    assert clip.num_objects >= 2


def test_clips_are_composites_with_consecutive_visible_objects():
    spec = ClipSpec(short_side=96, crop=(64, 96))
    videos = _videos()
    counts = set()
    for seed in range(30):
        clip = make_training_clip(videos, spec, np.random.default_rng(seed))
        assert clip.frames.shape == (3, 64, 96, 3) and clip.frames.dtype == np.uint8
        assert clip.labels.shape == (3, 64, 96) and clip.previous_labels.shape == (64, 96)
        ids = np.unique(clip.labels[ANCHOR])
        assert list(ids[ids > 0]) == list(range(1, clip.num_objects + 1))
        assert clip.labels.max() == clip.num_objects
        counts.add(clip.num_objects)
    assert {1, 2, 3} <= counts


def test_pasted_objects_carry_their_own_pixels():
    # black background video and one white object video: pasted pixels must be white exactly where labelled
    frames = np.zeros((6, 96, 128, 3), np.uint8)
    labels = np.zeros((6, 96, 128), np.uint16)
    labels[:, 30:60, 40:80] = 1
    white = frames.copy()
    white[labels > 0] = 255
    spec = ClipSpec(
        short_side=96,
        crop=(64, 96),
        paste_weights=(0.0, 1.0),
        scale_range=(1.0, 1.0),
        paste_scale=(1.0, 1.0),
        distractor_probability=0.0,
    )
    videos = [ArrayVideo(white, labels)]
    clip = make_training_clip(videos, spec, np.random.default_rng(3))
    kernel = np.ones((3, 3), np.uint8)
    inside = clip.labels > 0
    core = np.stack([cv2.erode(m.astype(np.uint8), kernel) for m in inside]) > 0
    outside = np.stack([cv2.erode((~m).astype(np.uint8), kernel) for m in inside]) > 0
    assert clip.num_objects >= 2
    assert clip.frames[core].min() > 200
    assert clip.frames[outside].max() < 50


def test_distractors_are_pasted_but_stay_background():
    # a black video whose object is a white square; pasted copies that are distractors stay label 0
    frames = np.zeros((6, 96, 128, 3), np.uint8)
    labels = np.zeros((6, 96, 128), np.uint16)
    labels[:, 30:60, 40:80] = 1
    frames[labels > 0] = 255
    spec = ClipSpec(short_side=96, crop=(64, 96), paste_weights=(0.0, 0.0, 1.0), distractor_probability=1.0)
    for seed in range(5):
        clip = make_training_clip([ArrayVideo(frames, labels)], spec, np.random.default_rng(seed))
        assert clip.num_objects == 1
        white = clip.frames.min(axis=-1) > 200
        assert (white & (clip.labels == 0)).sum() > 0.2 * (white & (clip.labels == 1)).sum()


def test_same_seed_same_clip_other_seed_other_clip():
    spec = ClipSpec(short_side=96, crop=(64, 96))
    videos = _videos()
    first = make_training_clip(videos, spec, np.random.default_rng([1, 0, 5]))
    again = make_training_clip(videos, spec, np.random.default_rng([1, 0, 5]))
    other = make_training_clip(videos, spec, np.random.default_rng([1, 0, 6]))
    np.testing.assert_array_equal(first.frames, again.frames)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert not np.array_equal(first.frames, other.frames)


def test_perturb_mask_grows_or_shrinks_every_object():
    labels = np.zeros((40, 60), np.int64)
    labels[5:20, 5:20] = 1
    labels[20:35, 30:55] = 2
    changed = set()
    for seed in range(10):
        out = perturb_mask(labels, np.random.default_rng(seed))
        for obj in (1, 2):
            area, new = (labels == obj).sum(), (out == obj).sum()
            assert new > 0
            changed.add("grow" if new > area else "shrink")
    assert changed == {"grow", "shrink"}


def test_clip_spec_rejects_bad_crops():
    with pytest.raises(ValueError, match="multiples of 16"):
        ClipSpec(short_side=96, crop=(60, 96))
    with pytest.raises(ValueError, match="at least 3 frames"):
        ClipSpec(short_side=96, length=2)
    with pytest.raises(ValueError, match="distractor_probability"):
        ClipSpec(short_side=96, distractor_probability=1.5)
