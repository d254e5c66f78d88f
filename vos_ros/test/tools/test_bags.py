"""Clip bags: written from a DAVIS-layout folder, read back identically, scored by stamp."""

import json

import numpy as np
import pytest
from PIL import Image as PilImage

from vos_ros.bags.bagfiles import BagError, image_message, read_bag, write_bag
from vos_ros.bags.clip_bag import DEFAULT_START_NS, GROUND_TRUTH_TOPIC, IMAGE_TOPIC, INITIAL_MASK_TOPIC, write_clip_bag
from vos_ros.bags.scoring import score_bags
from vos_ros.cli import bag_eval, bag_from_davis
from vos_ros.eval.davis import write_sequence
from vos_ros.eval.metrics import evaluate_sequence, summarize
from vos_ros.ros.convert import image_to_rgb, mask_to_labels
from vos_ros.ros.stamps import stamp_to_ns
from vos_ros.synthetic import make_clip

FRAMES, SIZE = 6, (120, 160)


@pytest.fixture(scope="module")
def davis_dir(tmp_path_factory):
    """A DAVIS-layout folder with one sequence of a synthetic two-object clip (JPEG frames, palette PNGs)."""
    root = tmp_path_factory.mktemp("davis")
    clip = make_clip(num_objects=2, num_frames=FRAMES, size=SIZE, seed=3)
    write_sequence(root, "toy", clip.frames, clip.labels)
    return root


def read_topics(path):
    """Topic -> list of (bag time, message) and the bag's topic types."""
    with read_bag(path) as bag:
        by_topic = {}
        for topic, timestamp, msg in bag.messages(bag.topics):
            by_topic.setdefault(topic, []).append((timestamp, msg))
        return by_topic, bag.topics


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_bag_from_davis_round_trip(davis_dir, tmp_path, storage):
    out = tmp_path / "toy_bag"
    rc = bag_from_davis.main(
        [
            "--davis",
            str(davis_dir),
            "--sequence",
            "toy",
            "--out",
            str(out),
            "--fps",
            "10",
            "--frame-id",
            "cam0",
            "--storage",
            storage,
        ]
    )
    assert rc == 0
    by_topic, types = read_topics(out)
    assert types == {
        IMAGE_TOPIC: "sensor_msgs/msg/Image",
        GROUND_TRUTH_TOPIC: "sensor_msgs/msg/Image",
        INITIAL_MASK_TOPIC: "sensor_msgs/msg/Image",
    }
    stamps = [DEFAULT_START_NS + t * 100_000_000 for t in range(FRAMES)]

    frames = by_topic[IMAGE_TOPIC]
    assert [stamp_to_ns(msg.header.stamp) for _, msg in frames] == stamps
    assert [timestamp for timestamp, _ in frames] == stamps
    for t, (_, msg) in enumerate(frames):
        assert msg.encoding == "rgb8" and msg.header.frame_id == "cam0"
        with PilImage.open(davis_dir / "JPEGImages" / "toy" / f"{t:05d}.jpg") as image:
            np.testing.assert_array_equal(image_to_rgb(msg), np.asarray(image.convert("RGB")))

    truth = by_topic[GROUND_TRUTH_TOPIC]
    assert [stamp_to_ns(msg.header.stamp) for _, msg in truth] == stamps
    assert [timestamp for timestamp, _ in truth] == stamps
    for t, (_, msg) in enumerate(truth):
        assert msg.encoding == "mono16"
        with PilImage.open(davis_dir / "Annotations" / "toy" / f"{t:05d}.png") as image:
            np.testing.assert_array_equal(mask_to_labels(msg), np.asarray(image))

    [(mask_time, mask)] = by_topic[INITIAL_MASK_TOPIC]
    assert mask_time == stamps[0] and stamp_to_ns(mask.header.stamp) == stamps[0]
    np.testing.assert_array_equal(mask_to_labels(mask), mask_to_labels(truth[0][1]))
    assert sorted(np.unique(mask_to_labels(mask))) == [0, 1, 2]


def test_bag_from_davis_bad_input_is_a_clear_error(davis_dir, tmp_path, capsys):
    assert bag_from_davis.main(["--davis", str(davis_dir), "--sequence", "nope", "--out", str(tmp_path / "a")]) == 1
    assert "no frame folder" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    (tmp_path / "b").mkdir()
    assert bag_from_davis.main(["--davis", str(davis_dir), "--sequence", "toy", "--out", str(tmp_path / "b")]) == 1
    assert "exists already" in capsys.readouterr().err


def test_failed_write_leaves_no_bag(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(BagError, match="differs from frame size"):
        write_clip_bag(tmp_path / "bad", [(rgb, np.zeros((8, 8), np.uint16)), (rgb, np.zeros((4, 8), np.uint16))])
    assert not (tmp_path / "bad").exists()
    with pytest.raises(BagError, match="no frames"):
        write_clip_bag(tmp_path / "empty", [])
    assert not (tmp_path / "empty").exists()


def test_bag_eval_matches_the_metric_code(tmp_path):
    """Predictions shifted by a few pixels, one frame missing: bag-eval equals the metrics on the same frames."""
    clip = make_clip(num_objects=2, num_frames=7, size=SIZE, seed=5)
    truth_bag = tmp_path / "truth"
    write_clip_bag(truth_bag, zip(clip.frames, clip.labels), storage="sqlite3")
    predicted = np.roll(clip.labels, shift=3, axis=2)
    missing = 3
    recorded = tmp_path / "recorded"
    with read_bag(truth_bag) as bag:
        truth_msgs = [msg for _, _, msg in bag.messages([GROUND_TRUTH_TOPIC])]
    with write_bag(recorded, "mcap") as out:
        for t, msg in enumerate(truth_msgs):
            if t != missing:
                stamp = stamp_to_ns(msg.header.stamp)
                out.write(
                    "/vos_node/labels", stamp + 5, image_message(out.typestore, stamp, "camera", predicted[t], "mono16")
                )

    expected_preds = predicted.copy()
    expected_preds[missing] = 0
    expected = summarize({"s": evaluate_sequence(clip.labels, expected_preds)})

    score = score_bags(recorded, truth_bag)
    assert score.frames == 7 and score.frames_tracked == 6 and score.frames_missing == 1
    assert score.summary["J&F"] == pytest.approx(expected["J&F"])
    assert 0 < expected["J&F"] < 1

    report = tmp_path / "score.json"
    assert bag_eval.main([str(recorded), str(truth_bag), "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["J&F"] == pytest.approx(expected["J&F"])
    assert data["frames_missing"] == 1


def test_bag_eval_errors(tmp_path, capsys):
    clip = make_clip(num_objects=1, num_frames=4, size=(40, 60), seed=1)
    truth_bag = tmp_path / "truth"
    write_clip_bag(truth_bag, zip(clip.frames, clip.labels))
    assert bag_eval.main([str(truth_bag), str(truth_bag)]) == 1
    assert "cannot tell the label topic" in capsys.readouterr().err
    assert bag_eval.main([str(tmp_path / "missing"), str(truth_bag)]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_truncated_bag_is_a_clear_error(tmp_path, storage):
    clip = make_clip(num_objects=1, num_frames=5, size=(60, 80), seed=2)
    path = tmp_path / "bag"
    write_clip_bag(path, zip(clip.frames, clip.labels), storage=storage)
    [data_file] = [p for p in path.iterdir() if p.suffix in (".db3", ".mcap")]
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    with pytest.raises(BagError, match="truncated, damaged"), read_bag(path) as bag:
        list(bag.raw(bag.topics))
