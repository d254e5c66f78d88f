"""Bags vos-ros-replay cannot use end with a clear error and a non-zero exit, quickly (never a hang)."""

import numpy as np
import pytest
from rosbags.typesys import get_types_from_msg

from vos_ros.bags.bagfiles import image_message, write_bag
from vos_ros.bags.clip_bag import GROUND_TRUTH_TOPIC, IMAGE_TOPIC, INITIAL_MASK_TOPIC, write_clip_bag
from vos_ros.bags.typestore import project_typestore
from vos_ros.synthetic import make_clip

pytestmark = pytest.mark.ros  # starts vos_node processes and talks DDS

TIMEOUT_S = 60  # a hang fails the test instead of blocking the suite


@pytest.fixture
def run_replay(run_tool):
    def run(*args):
        result = run_tool("vos-ros-replay", *args, timeout=TIMEOUT_S)
        return result.returncode, result.stderr

    return run


@pytest.fixture()
def clip():
    return make_clip(num_objects=2, num_frames=4, size=(48, 64), seed=4)


def test_bag_without_the_image_topic(tmp_path, clip, run_replay):
    bag = tmp_path / "bag"
    write_clip_bag(bag, zip(clip.frames, clip.labels))
    code, err = run_replay(bag, "--image-topic", "/front/image_raw")
    assert code != 0
    assert "has no topic /front/image_raw" in err and IMAGE_TOPIC in err


def test_image_topic_of_an_unknown_message_type(tmp_path, clip, run_replay):
    store = project_typestore()
    frame_def = "std_msgs/Header header\nuint8[] pixels\n"
    custom = type(store)()  # an empty store of the same kind, filled below
    custom.register(store.fielddefs)
    custom.register(get_types_from_msg(frame_def, "acme_msgs/msg/Frame"))
    bag = tmp_path / "bag"
    with write_bag(bag, "sqlite3", typestore=custom) as out:
        header = store.types["std_msgs/msg/Header"](
            stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="camera"
        )
        frame = custom.types["acme_msgs/msg/Frame"](header=header, pixels=clip.frames[0].reshape(-1))
        out.write(IMAGE_TOPIC, 1_000_000_000, frame)
        out.write(
            INITIAL_MASK_TOPIC, 1_000_000_000, image_message(custom, 1_000_000_000, "camera", clip.labels[0], "mono16")
        )
    code, err = run_replay(bag)
    assert code != 0
    assert "acme_msgs/msg/Frame" in err and "expected sensor_msgs/msg/Image" in err


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_truncated_bag(tmp_path, clip, storage, run_replay):
    bag = tmp_path / "bag"
    write_clip_bag(bag, zip(clip.frames, clip.labels), storage=storage)
    [data] = [p for p in bag.iterdir() if p.suffix in (".db3", ".mcap")]
    data.write_bytes(data.read_bytes()[: data.stat().st_size * 2 // 3])
    code, err = run_replay(bag)
    assert code != 0
    assert "truncated, damaged or not a rosbag2" in err


def test_initial_mask_of_another_size(tmp_path, clip, run_replay):
    bag = tmp_path / "bag"
    with write_bag(bag) as out:
        for t, (frame, labels) in enumerate(zip(clip.frames, clip.labels)):
            stamp = 1_000_000_000 + t * 33_000_000
            out.write(IMAGE_TOPIC, stamp, image_message(out.typestore, stamp, "camera", frame, "rgb8"))
            out.write(GROUND_TRUTH_TOPIC, stamp, image_message(out.typestore, stamp, "camera", labels, "mono16"))
        small = np.ascontiguousarray(clip.labels[0][::2, ::2])
        out.write(
            INITIAL_MASK_TOPIC, 1_000_000_000, image_message(out.typestore, 1_000_000_000, "camera", small, "mono16")
        )
    code, err = run_replay(bag)
    assert code != 0
    assert "initial mask on /initial_mask is 32x24 but the frames on /camera/image_raw are 64x48" in err


def test_missing_bag_and_bad_rate(tmp_path, clip, run_replay):
    code, err = run_replay(tmp_path / "nothing")
    assert code != 0 and "does not exist" in err
    bag = tmp_path / "bag"
    write_clip_bag(bag, zip(clip.frames, clip.labels))
    code, err = run_replay(bag, "--rate", "-1")
    assert code != 0 and "rate must be 0" in err
