"""The node benchmark: its helpers, its argument checks and one short real run."""

import json
import math

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from std_msgs.msg import Header

from vos_ros.cli import node_bench as cli
from vos_ros.ros.convert import labels_to_image
from vos_ros.ros.stamps import header_stamp_ns
from vos_ros.ros.stats import percentiles
from vos_ros.tools.node_bench import _slope_per_min


def test_header_stamp_is_read_from_serialized_images():
    header = Header(frame_id="camera")
    header.stamp.sec, header.stamp.nanosec = 1_700_000_123, 456_789
    data = serialize_message(labels_to_image(np.zeros((3, 4), np.uint16), header))
    assert header_stamp_ns(data) == 1_700_000_123_000_456_789


def test_slope_and_percentiles():
    assert _slope_per_min([(0.0, 100.0), (30.0, 101.0), (60.0, 102.0)]) == pytest.approx(2.0)
    assert math.isnan(_slope_per_min([(0.0, 1.0)]))
    figures = percentiles(range(1, 101))
    assert figures["p50"] == pytest.approx(50.5) and figures["max"] == 100 and figures["mean"] == 50.5
    assert math.isnan(percentiles([])["p50"])


@pytest.mark.parametrize(
    "argv", [["--size", "640"], ["--size", "8x8"], ["--rate", "0"], ["--duration", "-1"], ["--warmup", "200"]]
)
def test_bad_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.ros
def test_short_run_reports_every_figure(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = cli.main(["--size", "160x120", "--duration", "4", "--warmup", "1", "--short-side", "96", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["frames_published"] >= 60 and result["frames_answered"] > 0
    assert result["node_exit_code"] == 0
    assert result["latency_ms"]["p50"] > 0 and result["model_ms"] > 0 and result["rss_mb"]["end"] > 50
    printed = capsys.readouterr().out
    assert "node means: latency stamp -> labels published" in printed and "node RSS MiB" in printed
