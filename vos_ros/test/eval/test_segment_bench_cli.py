"""vos-ros-segment and vos-ros-bench end to end on tiny synthetic inputs."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from vos_ros.cli import bench, segment
from vos_ros.eval.davis import read_label_png, write_label_png
from vos_ros.synthetic import make_clip


def test_segment_writes_label_pngs_and_overlay_video(tmp_path, capsys):
    clip = make_clip(num_objects=2, num_frames=5, size=(96, 128), seed=4)
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, frame in enumerate(clip.frames):
        Image.fromarray(frame).save(frames / f"{index:05d}.png")
    write_label_png(tmp_path / "first.png", clip.labels[0])
    out = tmp_path / "out"
    assert (
        segment.main(
            ["--frames", str(frames), "--mask", str(tmp_path / "first.png"), "--out", str(out), "--config", "matching"]
        )
        == 0
    )
    masks = sorted((out / "masks").glob("*.png"))
    assert [m.name for m in masks] == [f"{i:05d}.png" for i in range(5)]
    np.testing.assert_array_equal(read_label_png(masks[0]), clip.labels[0])
    last = read_label_png(masks[-1])
    for k in (1, 2):
        inter = ((last == k) & (clip.labels[-1] == k)).sum()
        assert inter / ((last == k) | (clip.labels[-1] == k)).sum() > 0.5
    video = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert "objects [1, 2]" in capsys.readouterr().out


def test_segment_rejects_mask_of_other_size(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(frames / "0.png")
    write_label_png(tmp_path / "m.png", np.ones((32, 32), np.uint8))
    assert segment.main(["--frames", str(frames), "--mask", str(tmp_path / "m.png"), "--out", str(tmp_path / "o")]) == 2
    assert "label map is 32x32 but the image is 64x64" in capsys.readouterr().err


def test_bench_reports_ms_per_object_count_and_ratio(tmp_path, capsys):
    report_path, plot_path = tmp_path / "bench.json", tmp_path / "bench.png"
    argv = ["--instances", "1,5", "--size", "96x64", "--config", "matching", "--frames", "2", "--repeats", "1"]
    assert bench.main([*argv, "--json", str(report_path), "--plot", str(plot_path)]) == 0
    report = json.loads(report_path.read_text())
    assert set(report["ms_per_frame"]) == {"1", "5"} and all(v > 0 for v in report["ms_per_frame"].values())
    assert report["ratio_5_to_1"] == report["ms_per_frame"]["5"] / report["ms_per_frame"]["1"]
    assert plot_path.stat().st_size > 1000
    assert "ratio_5_to_1" in capsys.readouterr().out


def test_bench_short_side_sets_the_scale_the_sessions_segment_at(tmp_path, capsys, monkeypatch):
    import vos_ros.eval.speed as speed

    scales = []

    class Recorded(speed.Session):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            scales.append(self.short_side)

    monkeypatch.setattr(speed, "Session", Recorded)
    argv = ["--instances", "1", "--size", "96x64", "--config", "matching", "--frames", "1", "--repeats", "1"]
    assert bench.main([*argv, "--short-side", "48", "--json", str(tmp_path / "b.json")]) == 0
    assert scales and set(scales) == {48}
    assert json.loads((tmp_path / "b.json").read_text())["short_side"] == 48
    assert bench.main(argv) == 0
    assert set(scales[1:]) == {384}  # the config's own (matching segments at 384)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        bench.main([*argv, "--short-side", "x"])
    assert "--short-side: must be an integer >= 32" in capsys.readouterr().err
