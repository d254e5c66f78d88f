"""vos-ros-decode-bench: runs every input conversion and writes its figures (no timing is asserted)."""

import json

from vos_ros.cli import decode_bench


def test_decode_bench_reports_every_input(tmp_path, capsys):
    out = tmp_path / "decode.json"
    assert decode_bench.main(["--size", "64x48", "--frames", "3", "--cv-threads", "-1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["size"] == [64, 48] and report["frames"] == 3
    expected = {f"raw {name}" for name in decode_bench.RAW_ENCODINGS}
    expected |= {"compressed jpeg", "compressed png", "encode overlay jpeg"}
    assert set(report["results"]) == expected
    for figures in report["results"].values():
        assert 0 < figures["median_ms"] <= figures["p90_ms"]
    assert report["results"]["compressed jpeg"]["bytes"] > 0
    assert "JPEG input adds" in capsys.readouterr().out


def test_decode_bench_bad_image(tmp_path, capsys):
    missing = tmp_path / "none.jpg"
    assert decode_bench.main(["--size", "64x48", "--frames", "1", "--image", str(missing)]) == 1
    assert "cannot read image" in capsys.readouterr().err
