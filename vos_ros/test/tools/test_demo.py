"""vos-ros-demo end to end on a tiny clip: bag in, the real node, scores, recorded bag and video out."""

import json

import cv2
import pytest

from vos_ros.bags.bagfiles import read_bag

pytestmark = pytest.mark.ros  # starts vos_node processes and talks DDS

DEMO_TIMEOUT_S = 300


def test_demo_writes_scores_bag_and_video(tmp_path, run_tool):
    out = tmp_path / "demo_output"
    result = run_tool(
        "vos-ros-demo",
        *("--out", out, "--frames", 6, "--size", "160x120", "--objects", 2),
        *("--node-args", "-p", "config:=matching"),
        timeout=DEMO_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-2].startswith("J&F ")

    report = json.loads((out / "replay.json").read_text())
    assert report["answered"] == 5 and report["dropped"] == 0
    assert 0 <= report["scores"]["J&F"] <= 1

    with read_bag(out / "recorded_bag") as bag:
        assert {"/vos_node/labels", "/vos_node/overlay", "/vos_node/tracked_objects"} <= set(bag.topics)
        overlays = bag.message_count("/vos_node/overlay")
    video = cv2.VideoCapture(str(out / "overlay.mp4"))
    frames = 0
    while True:
        ok, frame = video.read()
        if not ok:
            break
        assert frame.shape == (120, 160, 3)
        frames += 1
    video.release()
    assert frames == overlays >= 5
