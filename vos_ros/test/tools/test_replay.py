"""vos-ros-replay through the real vos_node process over DDS, against the offline evaluator."""

import json

import numpy as np
import pytest

from vos_ros.bags.bagfiles import read_bag
from vos_ros.bags.clip_bag import IMAGE_TOPIC
from vos_ros.cli import bag_eval, bag_from_davis
from vos_ros.cli import eval as offline_eval
from vos_ros.eval.davis import write_sequence
from vos_ros.ros.convert import mask_to_labels
from vos_ros.ros.stamps import stamp_to_ns
from vos_ros.synthetic import make_clip

pytestmark = pytest.mark.ros  # starts vos_node processes and talks DDS

FRAMES, SIZE = 10, (120, 160)
REPLAY_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def replayed(tmp_path_factory, run_tool):
    """A synthetic two-object clip as DAVIS folder and bag, replayed at rate 0 with recording."""
    root = tmp_path_factory.mktemp("replay")
    clip = make_clip(num_objects=2, num_frames=FRAMES, size=SIZE, seed=11)
    write_sequence(root / "davis", "toy", clip.frames, clip.labels)
    bag = root / "toy_bag"
    assert bag_from_davis.main(["--davis", str(root / "davis"), "--sequence", "toy", "--out", str(bag)]) == 0
    result = run_tool(
        "vos-ros-replay",
        *(bag, "--record", root / "recorded", "--json", root / "replay.json", "--storage", "sqlite3"),
        *("--node-args", "-p", "config:=matching"),
        timeout=REPLAY_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        "root": root,
        "bag": bag,
        "recorded": root / "recorded",
        "stdout": result.stdout,
        "report": json.loads((root / "replay.json").read_text()),
    }


def stamps_of(path, topic):
    with read_bag(path) as bag:
        return [(stamp_to_ns(msg.header.stamp), msg) for _, _, msg in bag.messages([topic])]


def test_every_frame_is_answered_at_rate_0(replayed):
    report = replayed["report"]
    assert report["frames"] == FRAMES - 1
    assert report["answered"] == FRAMES - 1 and report["dropped"] == 0
    assert report["fps"] > 0 and report["latency_ms"]["p50"] > 0
    assert "dropped 0" in replayed["stdout"]


def test_recorded_outputs_carry_the_input_stamps(replayed):
    inputs = stamps_of(replayed["bag"], IMAGE_TOPIC)
    input_stamps = [stamp for stamp, _ in inputs]
    labels = stamps_of(replayed["recorded"], "/vos_node/labels")
    label_stamps = {stamp for stamp, _ in labels}
    assert set(input_stamps) <= label_stamps  # every frame answered, and nothing else
    assert label_stamps <= set(input_stamps)
    for _, msg in labels:
        assert msg.header.frame_id == "camera"
        assert mask_to_labels(msg).shape == SIZE
    objects = stamps_of(replayed["recorded"], "/vos_node/tracked_objects")
    assert set(input_stamps[1:]) <= {stamp for stamp, _ in objects}
    tracked = {stamp: sorted(o.id for o in msg.objects) for stamp, msg in objects}
    assert tracked[input_stamps[-1]] == [1, 2]


def test_replay_score_equals_offline_evaluator(replayed, tmp_path):
    offline_json = tmp_path / "offline.json"
    code = offline_eval.main(
        [
            "--davis",
            str(replayed["root"] / "davis"),
            "--sequences",
            "toy",
            "--config",
            "matching",
            "--json",
            str(offline_json),
            "--no-progress",
        ]
    )
    assert code == 0
    offline = json.loads(offline_json.read_text())
    replay_scores = replayed["report"]["scores"]
    assert abs(100 * replay_scores["J&F"] - 100 * offline["J&F"]) <= 0.5
    assert replay_scores["frames_missing"] == 0

    rescored = tmp_path / "rescored.json"
    assert bag_eval.main([str(replayed["recorded"]), str(replayed["bag"]), "--json", str(rescored)]) == 0
    assert json.loads(rescored.read_text())["J&F"] == pytest.approx(replay_scores["J&F"])
    assert np.isfinite(replay_scores["J&F"]) and replay_scores["J&F"] > 0.3


def test_real_time_rate_counts_dropped_frames(replayed, tmp_path, run_tool):
    """At the bag's own rate (30 Hz) the CPU node cannot keep up: the frames it skipped are counted."""
    result = run_tool(
        "vos-ros-replay",
        *(replayed["bag"], "--rate", 1, "--json", tmp_path / "rate1.json"),
        *("--node-args", "-p", "config:=matching"),
        timeout=REPLAY_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "rate1.json").read_text())
    assert report["frames"] == FRAMES - 1
    assert report["answered"] >= 1 and report["answered"] + report["dropped"] == FRAMES - 1
    assert report["scores"]["frames_missing"] == report["dropped"]
