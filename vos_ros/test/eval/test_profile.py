"""The per-stage profile: its stages account for the frame time, and it costs nothing when off."""

import json

from vos_ros.cli import bench
from vos_ros.eval.speed import profile_stages
from vos_ros.model import profiling
from vos_ros.model.profiling import STAGES, StageProfiler


def _check(profile: dict) -> None:
    assert set(STAGES) <= set(profile["stages_ms"])
    assert all(value >= 0.0 for value in profile["stages_ms"].values())
    assert profile["stages_ms"]["backbone"] > 0.0 and profile["stages_ms"]["global matching"] > 0.0
    # The stages, timed inside the frames, add up to the frame time measured around them.
    assert abs(profile["sum_ms"] - profile["frame_ms"]) <= 0.1 * profile["frame_ms"]
    assert abs(profile["frame_ms"] - profile["sum_ms"] - profile["unaccounted_ms"]) < 1e-6


def test_profile_stages_add_up_to_the_frame_time(fast_network):
    profiles = profile_stages(fast_network, [1, 3], (96, 128), frames=3, warmup=1)
    assert sorted(profiles) == [1, 3]
    for profile in profiles.values():
        _check(profile)


def test_stage_is_a_shared_no_op_without_a_profiler():
    assert profiling.stage("backbone") is profiling.stage("decoder")  # nothing created, no clock read
    profiler = StageProfiler()
    with profiling.profiling(profiler):
        with profiling.stage("backbone"):
            pass
        with profiling.stage("backbone"):
            pass
    assert set(profiler.totals_ms) == {"backbone"}
    assert profiling.stage("backbone") is profiling.stage("decoder")


def test_bench_profile_is_printed_and_in_the_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = "--config fast --size 128x96 --instances 1 --profile-instances 1,2 --frames 2 --repeats 1 --profile"
    assert bench.main([*args.split(), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "profile" in printed and "global matching" in printed
    report = json.loads(out.read_text())
    assert sorted(report["profile"]) == ["1", "2"]
    for profile in report["profile"].values():
        _check(profile)
