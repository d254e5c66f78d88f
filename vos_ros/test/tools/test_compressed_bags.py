"""Clip bags with sensor_msgs/CompressedImage frames: written by vos-ros-bag-from-davis --compressed, read back
by the replay's bag check and the video writer (no DDS)."""

import numpy as np
import pytest
from PIL import Image as PilImage

from vos_ros.bags.bagfiles import BagError, compressed_image_message, image_message, read_bag, write_bag
from vos_ros.bags.clip_bag import COMPRESSED_IMAGE_TOPIC, IMAGE_TOPIC, INITIAL_MASK_TOPIC, write_clip_bag
from vos_ros.bags.replay_input import inspect_replay_bag
from vos_ros.bags.video import write_topic_video
from vos_ros.cli import bag_from_davis
from vos_ros.eval.davis import write_sequence
from vos_ros.ros.compressed import compressed_to_rgb, encode_rgb
from vos_ros.ros.stamps import stamp_to_ns
from vos_ros.synthetic import make_clip

FRAMES, SIZE = 5, (120, 160)


@pytest.fixture(scope="module")
def davis_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis")
    clip = make_clip(num_objects=2, num_frames=FRAMES, size=SIZE, seed=4)
    write_sequence(root, "toy", clip.frames, clip.labels)
    return root


def davis_frame(davis_dir, index):
    with PilImage.open(davis_dir / "JPEGImages" / "toy" / f"{index:05d}.jpg") as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("codec, fmt", [("png", "rgb8; png compressed bgr8"), ("jpeg", "rgb8; jpeg compressed bgr8")])
def test_bag_from_davis_compressed(davis_dir, tmp_path, codec, fmt):
    out = tmp_path / "bag"
    args = ["--davis", str(davis_dir), "--sequence", "toy", "--out", str(out), "--compressed", codec]
    assert bag_from_davis.main([*args, "--jpeg-quality", "95"]) == 0
    with read_bag(out) as bag:
        assert bag.topics[COMPRESSED_IMAGE_TOPIC] == "sensor_msgs/msg/CompressedImage"
        assert IMAGE_TOPIC not in bag.topics
        frames = list(bag.messages([COMPRESSED_IMAGE_TOPIC]))
        mask = next(bag.messages([INITIAL_MASK_TOPIC]))[2]
    assert len(frames) == FRAMES
    for index, (_, timestamp, msg) in enumerate(frames):
        assert msg.format == fmt and msg.header.frame_id == "camera"
        assert stamp_to_ns(msg.header.stamp) == timestamp
        rgb = compressed_to_rgb(msg)
        original = davis_frame(davis_dir, index)
        if codec == "png":
            np.testing.assert_array_equal(rgb, original)
        else:
            assert np.abs(rgb.astype(int) - original).mean() < 3.0
    assert mask.header.stamp == frames[0][2].header.stamp

    checked = inspect_replay_bag(out)  # the raw topic name finds <topic>/compressed
    assert (checked.image_topic, checked.compressed) == (COMPRESSED_IMAGE_TOPIC, True)
    assert (checked.width, checked.height, len(checked.stamps)) == (SIZE[1], SIZE[0], FRAMES)
    assert checked.object_ids == (1, 2)
    assert inspect_replay_bag(out, COMPRESSED_IMAGE_TOPIC).image_topic == COMPRESSED_IMAGE_TOPIC

    video = tmp_path / "frames.mp4"
    assert write_topic_video(out, COMPRESSED_IMAGE_TOPIC, video, 10.0) == FRAMES
    assert video.stat().st_size > 0


def test_raw_bags_still_inspect_as_raw(tmp_path):
    clip = make_clip(num_objects=1, num_frames=3, size=SIZE, seed=1)
    write_clip_bag(tmp_path / "raw", zip(clip.frames, clip.labels))
    checked = inspect_replay_bag(tmp_path / "raw")
    assert (checked.image_topic, checked.compressed) == (IMAGE_TOPIC, False)


def test_bad_compressed_options(davis_dir, tmp_path, capsys):
    clip = make_clip(num_objects=1, num_frames=2, size=SIZE, seed=1)
    with pytest.raises(BagError, match="compressed must be one of jpeg, png"):
        write_clip_bag(tmp_path / "a", zip(clip.frames, clip.labels), compressed="tiff")
    args = ["--davis", str(davis_dir), "--sequence", "toy", "--out", str(tmp_path / "b"), "--compressed", "jpeg"]
    assert bag_from_davis.main([*args, "--jpeg-quality", "0"]) == 1
    assert "jpeg_quality must be within 1-100" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_undecodable_first_frame_is_a_clear_bag_error(tmp_path):
    clip = make_clip(num_objects=1, num_frames=2, size=SIZE, seed=1)
    stream = encode_rgb(clip.frames[0], "jpeg")
    with write_bag(tmp_path / "bad") as bag:
        bad = compressed_image_message(bag.typestore, 1, "camera", stream[:-100], "jpeg")  # truncated
        bag.write(COMPRESSED_IMAGE_TOPIC, 1, bad)
        bag.write(INITIAL_MASK_TOPIC, 1, image_message(bag.typestore, 1, "camera", clip.labels[0], "mono16"))
    with pytest.raises(BagError, match=r"first image on /camera/image_raw/compressed .* truncated"):
        inspect_replay_bag(tmp_path / "bad")


def test_missing_image_topic_names_the_bag_topics(tmp_path):
    clip = make_clip(num_objects=1, num_frames=2, size=SIZE, seed=1)
    write_clip_bag(tmp_path / "png", zip(clip.frames, clip.labels), compressed="png")
    with pytest.raises(BagError, match=r"has no topic /other; its topics: .*CompressedImage"):
        inspect_replay_bag(tmp_path / "png", "/other")
