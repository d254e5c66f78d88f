"""vos-ros-export writes both graphs and a JSON describing them, after checking them once."""

import json

import pytest

from vos_ros.cli import export
from vos_ros.model.configs import get_config

pytest.importorskip("onnxruntime")


def test_export_writes_graphs_json_and_checks_them(tmp_path):
    out = tmp_path / "graphs"
    side = get_config("fast").short_side  # a 4:3 input at the config's own scale is not resized
    assert export.main(["--config", "fast", "--out", str(out), "--size", f"{side * 4 // 3}x{side}"]) == 0
    report = json.loads((out / "graphs.json").read_text())
    assert report["config"] == "fast" and report["network_input_size"] == [side * 4 // 3, side]
    for kind in ("encoder", "segment"):
        graph = report["graphs"][kind]
        assert (out / graph["file"]).stat().st_size > 0
        assert graph["inputs"] and graph["outputs"]
    segment_inputs = {spec["name"]: spec["shape"] for spec in report["graphs"]["segment"]["inputs"]}
    assert segment_inputs["fg_keys"][1] == "fg_pixels" and segment_inputs["fg_probs"][0] == "classes"
    assert max(report["check"]["encoder_max_abs_diff"].values()) < 1e-3
    assert report["check"]["segment_log_probs_max_abs_diff"] < 1e-3


def test_export_of_a_config_without_heads_is_a_clear_error(tmp_path, capsys):
    assert export.main(["--config", "matching", "--out", str(tmp_path)]) == 2
    assert "learned" in capsys.readouterr().err
