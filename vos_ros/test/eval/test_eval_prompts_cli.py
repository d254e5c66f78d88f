"""vos-ros-eval-prompts, vos-ros-eval --init box and vos-ros-segment --box on a synthetic DAVIS folder."""

import json
import re

import numpy as np
import pytest

from vos_ros.cli.eval import main as eval_main
from vos_ros.cli.eval_prompts import main as prompts_main
from vos_ros.cli.segment import main as segment_main
from vos_ros.eval.davis import read_image, read_label_png, write_sequence
from vos_ros.eval.prompts import gt_box, jittered_box
from vos_ros.synthetic import make_clip

LAST_LINE = re.compile(r"^mIoU (\d+\.\d) GrabCut (\d+\.\d|-)$")


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis")
    clip = make_clip(num_objects=2, num_frames=12, size=(240, 320), seed=6)
    write_sequence(root, "two", clip.frames, clip.labels)
    (root / "ImageSets").mkdir()
    (root / "ImageSets" / "dev.txt").write_text("two\n")
    return root


def test_boxes_are_grown_and_jittered_within_the_image():
    mask = np.zeros((100, 200), bool)
    mask[10:50, 20:120] = True
    assert gt_box(mask) == pytest.approx((15.0, 8.0, 125.0, 52.0))
    mask[:, :5] = True
    assert gt_box(mask)[0] == 0.0
    rng = np.random.default_rng(0)
    for _ in range(50):
        x0, y0, x1, y1 = jittered_box((15.0, 8.0, 125.0, 52.0), (100, 200), rng)
        assert 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 100


def test_eval_prompts_reports_per_sequence_and_mean(davis, tmp_path, capsys):
    path = tmp_path / "prompts.json"
    assert prompts_main(["--davis", str(davis), "--every", "5", "--json", str(path), "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    match = LAST_LINE.match(lines[-1])
    assert match, lines[-1]
    report = json.loads(path.read_text())
    entry = report["sequences"]["two"]
    assert entry["n_samples"] == 3 * 2 * 2  # frames 0, 5, 10; two objects; grown and jittered boxes
    for key in ("mean_iou", "grabcut_mean_iou"):
        assert 0.0 <= report[key] <= 1.0 and report[key] == entry[key]
    assert float(match.group(1)) == pytest.approx(100 * report["mean_iou"], abs=0.05)
    assert float(match.group(2)) == pytest.approx(100 * report["grabcut_mean_iou"], abs=0.05)


def test_eval_init_box_starts_from_the_prompt_heads_masks(davis, tmp_path, capsys):
    path = tmp_path / "box.json"
    masks = tmp_path / "masks"
    args = ["--davis", str(davis), "--init", "box", "--json", str(path), "--save-masks", str(masks), "--no-progress"]
    assert eval_main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("J&F ")
    report = json.loads(path.read_text())
    assert report["init"] == "box"
    assert set(report["sequences"]["two"]["objects"]) == {"1", "2"}
    first = read_label_png(masks / "two" / "00000.png")
    truth = read_label_png(davis / "Annotations" / "two" / "00000.png")
    assert not np.array_equal(first, truth), "frame 0 must be the prompt head's mask, not the annotation"
    for k in (1, 2):
        assert ((first == k) & (truth == k)).sum() / ((first == k) | (truth == k)).sum() >= 0.5


def test_segment_from_boxes(davis, tmp_path, capsys):
    truth = read_label_png(davis / "Annotations" / "two" / "00000.png")
    boxes = [gt_box(truth == k) for k in (1, 2)]
    args = ["--frames", str(davis / "JPEGImages" / "two"), "--out", str(tmp_path / "out")]
    for box, name in zip(boxes, ("a", "b")):
        args += ["--box", ",".join(f"{v:.1f}" for v in box) + f":{name}"]
    assert segment_main(args) == 0
    assert "objects [1, 2]" in capsys.readouterr().out
    first = read_label_png(tmp_path / "out" / "masks" / "00000.png")
    assert set(np.unique(first)) <= {0, 1, 2}
    assert read_image(davis / "JPEGImages" / "two" / "00000.jpg").shape[:2] == first.shape
    assert len(list((tmp_path / "out" / "masks").glob("*.png"))) == 12
