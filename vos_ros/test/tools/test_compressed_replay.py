"""vos-ros-replay of a bag whose frames are sensor_msgs/CompressedImage, through the real vos_node process:
the node is started with image_transport:=compressed and answers every frame; PNG frames are lossless, so
the score equals the offline evaluator's on the same sequence."""

import json

import pytest

from vos_ros.bags.bagfiles import read_bag
from vos_ros.bags.clip_bag import COMPRESSED_IMAGE_TOPIC
from vos_ros.cli import bag_from_davis
from vos_ros.cli import eval as offline_eval
from vos_ros.eval.davis import write_sequence
from vos_ros.ros.stamps import stamp_to_ns
from vos_ros.synthetic import make_clip

pytestmark = pytest.mark.ros  # starts vos_node processes and talks DDS

FRAMES, SIZE = 8, (120, 160)
REPLAY_TIMEOUT_S = 300


@pytest.mark.parametrize("codec", ["png", "jpeg"])
def test_replay_of_a_compressed_bag(tmp_path, run_tool, codec):
    clip = make_clip(num_objects=2, num_frames=FRAMES, size=SIZE, seed=12)
    write_sequence(tmp_path / "davis", "toy", clip.frames, clip.labels)
    bag = tmp_path / "bag"
    args = ["--davis", str(tmp_path / "davis"), "--sequence", "toy", "--out", str(bag), "--compressed", codec]
    assert bag_from_davis.main([*args, "--jpeg-quality", "95"]) == 0
    result = run_tool(
        "vos-ros-replay",
        *(bag, "--record", tmp_path / "recorded", "--json", tmp_path / "replay.json"),
        *("--node-args", "-p", "config:=matching"),
        timeout=REPLAY_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "image_transport:=compressed" in result.stderr
    report = json.loads((tmp_path / "replay.json").read_text())
    assert report["frames"] == FRAMES - 1 and report["answered"] == FRAMES - 1 and report["dropped"] == 0
    with read_bag(bag) as source:
        stamps = {stamp_to_ns(msg.header.stamp) for _, _, msg in source.messages([COMPRESSED_IMAGE_TOPIC])}
    with read_bag(tmp_path / "recorded") as recorded:
        labels = {stamp_to_ns(msg.header.stamp) for _, _, msg in recorded.messages(["/vos_node/labels"])}
    assert labels == stamps

    offline_json = tmp_path / "offline.json"
    davis = ["--davis", str(tmp_path / "davis"), "--sequences", "toy", "--config", "matching"]
    assert offline_eval.main([*davis, "--json", str(offline_json), "--no-progress"]) == 0
    offline = json.loads(offline_json.read_text())["J&F"]
    replayed = report["scores"]["J&F"]
    if codec == "png":  # lossless: the node saw exactly the offline evaluator's frames
        assert abs(100 * replayed - 100 * offline) <= 0.5
    else:
        assert abs(100 * replayed - 100 * offline) <= 5.0 and replayed > 0.3
