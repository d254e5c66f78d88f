"""vos-ros-node-bench --cameras: argument checks and one short real run of two cameras in one node
against two separate processes."""

import json

import pytest

from vos_ros.cli import node_bench as cli


@pytest.mark.parametrize("argv", [["--cameras", "0"], ["--cameras", "two"], ["--cameras", ""], ["--separate"]])
def test_bad_camera_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.ros
def test_two_cameras_one_node_and_two_processes_report_every_figure(tmp_path, capsys):
    out = tmp_path / "cameras.json"
    argv = ["--cameras", "2", "--separate", "--size", "160x120", "--duration", "5", "--warmup", "1"]
    code = cli.main([*argv, "--short-side", "96", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    one_node, apart = result["runs"]
    assert (one_node["cameras"], one_node["processes"], one_node["separate_processes"]) == (2, 1, False)
    assert (apart["cameras"], apart["processes"], apart["separate_processes"]) == (2, 2, True)
    for run in result["runs"]:
        assert list(run["per_camera"]) == ["cam0", "cam1"]
        for camera in run["per_camera"].values():
            assert camera["published"] > 0 and camera["answered"] > 0 and camera["latency_ms"]["p50"] > 0
        assert run["peak_rss_mb"] > 50 and run["model_ms_per_batch"] > 0
        assert run["node_exit_codes"] == [0] * run["processes"]
    assert 1.0 <= one_node["batch_size"] <= 2.0
    assert set(result["ratios"]) == {"answered_hz_2_one_node_over_2_processes", "peak_rss_2_one_node_over_2_processes"}
    printed = capsys.readouterr().out
    assert "2 camera(s), one node: answered" in printed and "2 separate processes: answered" in printed


@pytest.mark.ros
def test_compressed_input_reaches_every_camera_of_one_node(tmp_path):
    out = tmp_path / "cameras.json"
    argv = [
        "--cameras",
        "2",
        "--image-transport",
        "compressed",
        "--size",
        "160x120",
        "--duration",
        "4",
        "--warmup",
        "1",
    ]
    assert cli.main([*argv, "--short-side", "96", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["options"]["image_transport"] == "compressed"
    (run,) = result["runs"]
    for camera in run["per_camera"].values():
        assert camera["published"] > 0 and camera["answered"] > 0, "JPEG frames on <image>/compressed were answered"
    assert run["node_exit_codes"] == [0]
