"""Synthetic video from one photo: exact masks, objects stay in view, seeds reproduce bit for bit."""

import itertools

import numpy as np
import pytest
from static_photos import make_photo

from vos_ros.train.clips import ClipSpec, make_training_clip
from vos_ros.train.static import (
    MixedVideos,
    MotionSpec,
    StaticVideo,
    StaticVideos,
    sampling_maps,
    static_pairs,
    warp_pair,
)

SPEC = ClipSpec(short_side=64, crop=(64, 96), length=5)


def _frames(video):
    return [video.frame(i) for i in range(len(video))]


def test_the_same_transform_warps_a_mask_identically_and_keeps_its_values_exact():
    photo, mask = make_photo(0)
    labels = mask.astype(np.uint16) * 7  # any label value must come through unchanged
    video = StaticVideo(photo, labels, seed=5)
    for index in (0, 9, 23):
        maps = sampling_maps(labels.shape, *video.transform(index))
        first = warp_pair(photo, labels, maps)
        second = warp_pair(photo, labels, sampling_maps(labels.shape, *video.transform(index)))
        assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
        assert set(np.unique(first[1]).tolist()) <= {0, 7}
        # nearest neighbour: every warped label is the source label at the rounded sampling position
        xs = np.clip(np.rint(maps[0]).astype(int), 0, labels.shape[1] - 1)
        ys = np.clip(np.rint(maps[1]).astype(int), 0, labels.shape[0] - 1)
        inside = (maps[0] >= 0) & (maps[0] <= labels.shape[1] - 1) & (maps[1] >= 0) & (maps[1] <= labels.shape[0] - 1)
        agree = first[1][inside] == labels[ys[inside], xs[inside]]
        assert agree.mean() > 0.995  # exact up to ties at half-pixel positions


def test_frames_move_but_the_first_transform_at_zero_strength_is_the_identity():
    photo, mask = make_photo(1)
    video = StaticVideo(photo, mask, seed=3)
    matrix, displacement = video.transform(4, strength=0.0)
    assert np.allclose(matrix, [[1, 0, 0], [0, 1, 0]]) and not np.any(displacement)
    labels = [video.annotation(i) for i in range(len(video))]
    assert not np.array_equal(labels[0], labels[-1])
    # smooth: consecutive frames differ far less than the first and the last
    step = np.mean([np.mean(a != b) for a, b in itertools.pairwise(labels)])
    assert step < np.mean(labels[0] != labels[-1])


def test_objects_never_leave_a_labelled_frame_even_under_wild_motion():
    wild = MotionSpec(length=12, scale=1.0, rotation=90.0, translation=1.5, shear=0.5, min_visible_fraction=0.25)
    pulled_back = 0
    for seed in range(12):
        photo, mask = make_photo(seed)
        video = StaticVideo(photo, mask, seed=seed, motion=wild)
        area = np.count_nonzero(mask)
        for index in range(len(video)):
            visible = np.count_nonzero(video.annotation(index))
            assert visible >= 0.25 * area, (seed, index)
            full = warp_pair(photo, mask, sampling_maps(mask.shape, *video.transform(index)))[1]
            pulled_back += np.count_nonzero(full) < 0.25 * area
    assert pulled_back > 0  # the motion was wild enough to need the safeguard


def test_a_seed_reproduces_a_video_bit_for_bit_and_another_seed_differs():
    photo, mask = make_photo(2)
    a, b, c = (StaticVideo(photo, mask, seed=s) for s in ([0, 4], [0, 4], [0, 5]))
    for (ia, la), (ib, lb) in zip(_frames(a), _frames(b)):
        assert np.array_equal(ia, ib) and np.array_equal(la, lb)
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(_frames(a), _frames(c)))


def test_training_clips_from_a_static_folder_reproduce_bit_for_bit(static_folder):
    pairs = static_pairs(static_folder)
    assert len(pairs) == 5 and all(image.is_file() and mask.is_file() for image, mask in pairs)
    videos = StaticVideos(pairs, motion=MotionSpec(length=10), seed=1, variants=50)
    assert len(videos) == 250
    clips = [make_training_clip(videos, SPEC, np.random.default_rng([1, 0, 3, 0])) for _ in range(2)]
    assert clips[0].frames.shape == (5, 64, 96, 3) and clips[0].num_objects >= 1
    for name in ("frames", "labels", "previous_labels"):
        assert np.array_equal(getattr(clips[0], name), getattr(clips[1], name))
    other = make_training_clip(videos, SPEC, np.random.default_rng([1, 0, 4, 0]))
    assert not np.array_equal(other.frames, clips[0].frames)
    assert np.array_equal(
        videos[7].annotation(3), StaticVideos(pairs, seed=1, motion=MotionSpec(length=10))[7].annotation(3)
    )


def test_mixed_videos_draw_each_source_with_its_weight(static_folder):
    statics = StaticVideos.from_folder(static_folder, variants=10)
    davis_like = ["a", "b", "c", "d"]
    mixed = MixedVideos([davis_like, statics], [0.75, 0.25])
    rng = np.random.default_rng(0)
    drawn = [mixed[int(rng.integers(len(mixed)))] for _ in range(400)]
    share = np.mean([isinstance(v, str) for v in drawn])
    assert 0.65 < share < 0.85
    assert {v for v in drawn if isinstance(v, str)} == set(davis_like)
    assert mixed[0] == "a" and isinstance(mixed[len(mixed) - 1], StaticVideo)
    assert MixedVideos([davis_like, statics], [1.0, 0.0])[len(mixed) - 1] == "d"


def test_bad_static_input_is_a_clear_error(tmp_path):
    photo, mask = make_photo(0)
    with pytest.raises(ValueError, match="an object"):
        StaticVideo(photo, np.zeros_like(mask), seed=0)
    with pytest.raises(ValueError, match="differ in size"):
        StaticVideo(photo, mask[:10], seed=0)
    with pytest.raises(ValueError, match=r"list\.txt"):
        static_pairs(tmp_path)
    with pytest.raises(ValueError, match="weights"):
        MixedVideos([["a"]], [0.0])
