"""The DAVIS evaluation runner (with a scripted session) and vos-ros-eval end to end (real network)."""

import json
import re

import numpy as np
import pytest

from vos_ros.cli import eval as eval_cli
from vos_ros.cli.eval import main
from vos_ros.engine.fragments import FragmentFilter
from vos_ros.engine.session import Session
from vos_ros.eval.davis import DavisDataset, read_label_png, write_sequence
from vos_ros.eval.metrics import evaluate_sequence
from vos_ros.eval.runner import evaluate
from vos_ros.synthetic import make_clip

LAST_LINE = re.compile(r"^J&F (\d+\.\d) J (\d+\.\d) F (\d+\.\d)$")


class StaticSession:
    """Predicts the first-frame mask forever; records what it was given."""

    def __init__(self, network):
        self.log = network
        self.mask = None

    def set_mask(self, image, label_map):
        self.log.append(("set_mask", int(image[0, 0, 0])))
        self.mask = label_map.copy()
        return sorted(int(v) for v in np.unique(label_map) if v)

    def step(self, image):
        self.log.append(("step", int(image[0, 0, 0])))
        return type("Result", (), {"label_map": self.mask})()


def write_static_folder(root):
    """'still': two objects that never move. 'vanish': one object only on frame 0. 5 frames, 40x48."""
    frames = np.zeros((5, 40, 48, 3), np.uint8)
    frames[:] = (np.arange(5) * 40)[:, None, None, None]  # frame t has grey level 40 t
    still = np.zeros((5, 40, 48), np.uint16)
    still[:, 5:15, 5:15] = 1
    still[:, 20:35, 25:40] = 2
    vanish = np.zeros((5, 40, 48), np.uint16)
    vanish[0, 10:30, 10:30] = 1
    write_sequence(root, "still", frames, still)
    write_sequence(root, "vanish", frames, vanish)
    return still, vanish


def test_runner_feeds_the_session_and_scores_per_object(tmp_path):
    write_static_folder(tmp_path / "davis")
    log = []
    report = evaluate(
        log,
        tmp_path / "davis",
        ["still", "vanish"],
        save_masks=tmp_path / "masks",
        progress=False,
        session_factory=StaticSession,
    )
    grey = [0, 40, 80, 120, 160]
    expected_calls = [("set_mask", 0)] + [("step", g) for g in grey[1:]]
    assert log == expected_calls * 2
    # objects: still/1 and still/2 are perfect, vanish/1 is predicted on empty frames
    assert report["J"] == pytest.approx(2 / 3)
    assert report["F"] == pytest.approx(2 / 3)
    assert report["J&F"] == pytest.approx(2 / 3)
    assert report["n_objects"] == 3 and report["n_sequences"] == 2 and report["n_frames"] == 10
    still, vanish = report["sequences"]["still"], report["sequences"]["vanish"]
    assert still["J"] == 1.0 and vanish["J"] == 0.0
    assert still["n_frames"] == 5 and still["n_frames_evaluated"] == 3
    assert still["ms_per_frame"] >= 0.0 and report["ms_per_frame"] >= 0.0
    saved = sorted(p.name for p in (tmp_path / "masks" / "vanish").iterdir())
    assert saved == [f"{t:05d}.png" for t in range(5)]
    first = DavisDataset(tmp_path / "davis").sequence("vanish").annotation(0)
    np.testing.assert_array_equal(read_label_png(tmp_path / "masks" / "vanish" / "00004.png"), first)


def test_runner_rejects_short_and_unknown_sequences(tmp_path):
    write_static_folder(tmp_path)
    clip = make_clip(num_objects=1, num_frames=2, size=(32, 32))
    write_sequence(tmp_path, "short", clip.frames, clip.labels)
    with pytest.raises(ValueError, match="needs at least 3"):
        evaluate([], tmp_path, ["still", "short"], progress=False, session_factory=StaticSession)
    with pytest.raises(ValueError, match="no frame folder"):
        evaluate([], tmp_path, ["nope"], progress=False, session_factory=StaticSession)


@pytest.fixture(scope="module")
def synthetic_davis(tmp_path_factory):
    """Two 5-frame 64x96 sequences (two moving objects each) with ImageSets/val.txt."""
    root = tmp_path_factory.mktemp("davis")
    for seed, name in enumerate(["alpha", "beta"]):
        clip = make_clip(num_objects=2, num_frames=5, size=(64, 96), seed=seed)
        write_sequence(root, name, clip.frames, clip.labels)
    (root / "ImageSets").mkdir()
    (root / "ImageSets" / "val.txt").write_text("alpha\nbeta\n")
    return root


def test_cli_end_to_end_with_the_matching_network(synthetic_davis, tmp_path, capsys):
    json_path, mask_dir = tmp_path / "report.json", tmp_path / "masks"
    code = main(
        [
            "--davis",
            str(synthetic_davis),
            "--config",
            "matching",
            "--device",
            "cpu",
            "--json",
            str(json_path),
            "--save-masks",
            str(mask_dir),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    match = LAST_LINE.match(lines[-1])
    assert match, lines[-1]
    assert lines[1].split()[0] == "alpha" and lines[2].split()[0] == "beta"

    report = json.loads(json_path.read_text())
    assert report["split"] == "val" and report["config"] == "matching" and report["device"] == "cpu"
    assert report["short_side"] == 384 and report["drop_fragments"] is True
    assert [float(x) for x in match.groups()] == [round(100 * report[k], 1) for k in ("J&F", "J", "F")]
    assert report["J&F"] == pytest.approx((report["J"] + report["F"]) / 2)
    assert set(report["sequences"]) == {"alpha", "beta"}
    assert report["n_objects"] == 4

    dataset = DavisDataset(synthetic_davis)
    for name, entry in report["sequences"].items():
        assert entry["n_frames"] == 5 and entry["n_objects"] == 2 and entry["ms_per_frame"] > 0
        seq = dataset.sequence(name)
        saved = [read_label_png(mask_dir / name / f"{p.stem}.png") for p in seq.frame_paths]
        rescored = evaluate_sequence([seq.annotation(i) for i in range(len(seq))], saved)
        assert entry["J"] == pytest.approx(rescored.j.mean())
        assert entry["F"] == pytest.approx(rescored.f.mean())


def test_cli_sequence_list_and_errors(synthetic_davis, tmp_path, capsys):
    json_path = tmp_path / "r.json"
    code = main(
        [
            "--davis",
            str(synthetic_davis),
            "--sequences",
            "beta",
            "--device",
            "cpu",
            "--no-progress",
            "--json",
            str(json_path),
        ]
    )
    assert code == 0
    assert list(json.loads(json_path.read_text())["sequences"]) == ["beta"]
    capsys.readouterr()

    assert main(["--davis", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--davis", str(synthetic_davis), "--split", "test", "--no-progress"]) == 2
    assert "split 'test'" in capsys.readouterr().err
    assert main(["--davis", str(synthetic_davis), "--sequences", "gamma", "--device", "cpu", "--no-progress"]) == 2
    assert "gamma" in capsys.readouterr().err
    assert main(["--davis", str(synthetic_davis), "--config", "huge", "--no-progress"]) == 2
    assert "unknown config" in capsys.readouterr().err


def test_cli_short_side_sets_the_scale_the_sessions_segment_at(synthetic_davis, tmp_path, capsys):
    reports = {}
    for short_side in (None, 48):
        json_path = tmp_path / f"{short_side}.json"
        extra = ["--short-side", str(short_side)] if short_side else []
        args = ["--davis", str(synthetic_davis), "--config", "matching", "--device", "cpu", "--no-progress"]
        assert main([*args, "--json", str(json_path), *extra]) == 0
        reports[short_side] = json.loads(json_path.read_text())
    assert reports[48]["short_side"] == 48
    assert reports[48]["J"] != pytest.approx(reports[None]["J"], abs=1e-6)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--davis", str(synthetic_davis), "--short-side", "8"])
    assert "--short-side: must be an integer >= 32" in capsys.readouterr().err


def test_cli_keep_fragments_switches_the_sessions_filter_off(synthetic_davis, tmp_path, monkeypatch):
    filters = []

    class RecordingSession(Session):
        def __init__(self, network, **options):
            filters.append(options["fragment_filter"])
            super().__init__(network, **options)

    monkeypatch.setattr(eval_cli, "Session", RecordingSession)
    args = ["--davis", str(synthetic_davis), "--config", "matching", "--device", "cpu", "--no-progress"]
    for extra in ([], ["--keep-fragments"]):
        json_path = tmp_path / f"{len(extra)}.json"
        filters.clear()
        assert main([*args, "--json", str(json_path), *extra]) == 0
        drop = not extra
        assert json.loads(json_path.read_text())["drop_fragments"] is drop
        assert len(filters) == 2 and all(isinstance(f, FragmentFilter) == drop for f in filters)
