"""The soak figures of the node bench: memory per window, the trend of the peaks, latency per
window, the plot, and a short real run with churn."""

import json
import math

import pytest

from vos_ros.cli import node_bench as cli
from vos_ros.tools.node_bench import MemorySampler, _latency_windows, _peak_trend, plot_run


def sampler(samples, peaks, window=10.0):
    memory = MemorySampler(pid=0, interval=0.05, window=window)
    memory.samples, memory.window_peaks = samples, peaks
    return memory


def test_window_peak_is_the_high_water_mark_when_it_is_higher_than_every_sample():
    samples = [(t / 10, 100.0 + (t % 7)) for t in range(300)]  # 30 s of a sawtooth between 100 and 106
    windows = sampler(samples, [150.0, math.nan, 103.0]).windows()
    assert [w["start_s"] for w in windows] == [0.0, 10.0, 20.0]
    assert windows[0]["peak_mb"] == 150.0 and windows[0]["trough_mb"] == 100.0 and windows[0]["swing_mb"] == 50.0
    assert windows[1]["peak_mb"] == 106.0, "no high-water mark: the samples' maximum"
    assert windows[2]["peak_mb"] == 106.0, "a sample above the mark wins"
    assert all(w["samples"] == 100 for w in windows)


def test_peak_trend_fits_the_last_two_thirds():
    windows = [{"start_s": 10.0 * i, "peak_mb": 500.0 + (0.0 if i < 6 else 2.0 * (i - 6))} for i in range(18)]
    trend = _peak_trend(windows, duration=180.0)
    assert trend["windows_in_fit"] == 12
    # flat for the first third, then +2 MiB per 10 s window: 12 MiB/min over 60..170 s
    assert trend["peak_slope_last_two_thirds_mb_per_min"] == pytest.approx(12.0)
    assert trend["peak_growth_last_two_thirds_mb"] == pytest.approx(12.0 * 110 / 60)
    assert math.isnan(_peak_trend(windows[:2], duration=180.0)["peak_slope_last_two_thirds_mb_per_min"])


def test_latency_windows_and_plot(tmp_path):
    second = 10**9
    published = [t * second // 10 for t in range(200)]  # 20 s at 10 Hz
    answered = {s: s + (50 if s < 10 * second else 80) * 10**6 for s in published[::2]}
    windows = _latency_windows(published, answered, 10.0)
    assert [(w["start_s"], w["answered"], w["p50"]) for w in windows] == [(0.0, 50, 50.0), (10.0, 50, 80.0)]
    memory = sampler([(t / 10, 100.0) for t in range(200)], [101.0, 102.0]).windows()
    result = {
        "rss_mb": {"series": [(t, 100.0) for t in range(20)]},
        "memory": {
            "windows": memory,
            "window_s": 10.0,
            "peak_slope_last_two_thirds_mb_per_min": 1.0,
            "swing_mb_median": 1.5,
        },
        "latency_windows": windows,
    }
    plot_run(result, str(tmp_path / "soak.png"))
    assert (tmp_path / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.ros
def test_short_run_with_churn(tmp_path, capsys):
    out = tmp_path / "soak.json"
    argv = ["--size", "160x120", "--duration", "9", "--warmup", "1", "--short-side", "96", "--churn", "2"]
    assert cli.main([*argv, "--window", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["churn"]["removes"] >= 2 and result["churn"]["adds"] >= 1 and result["churn"]["failures"] == []
    assert len(result["memory"]["windows"]) >= 3 and result["memory"]["peak_source"].startswith("VmHWM")
    assert all(w["peak_mb"] >= w["trough_mb"] > 50 for w in result["memory"]["windows"])
    assert result["frames_lost"] is not None and (tmp_path / "soak.png").exists()
    assert "node RSS per 2 s window" in capsys.readouterr().out
