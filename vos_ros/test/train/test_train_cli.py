"""vos-ros-train end to end on a tiny DAVIS-layout folder, bad input, and a 2-process gloo run."""

import json
import os
import subprocess
import sys

import pytest

from vos_ros.cli.train import main
from vos_ros.model import build_network


def _args(davis, out, *extra):
    return [
        "--config",
        "fast",
        "--data",
        str(davis),
        "--split",
        "fit",
        "--out",
        str(out),
        "--crop",
        "128x64",
        "--clip-length",  # the fast recipe's 8-frame clips need longer videos than these 5-frame ones
        "3",
        "--no-progress",
        *extra,
    ]


def test_cli_trains_saves_and_scores_the_eval_split(davis, tmp_path, capsys):
    assert main(_args(davis, tmp_path, "--steps", "3", "--checkpoint-every", "2", "--threads", "2")) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {
        "train_log.jsonl",
        "weights.pt",
        "loss_curve.png",
        "eval_dev.json",
        "checkpoint-000002.pt",
        "checkpoint-000003.pt",
    } <= names
    report = json.loads((tmp_path / "eval_dev.json").read_text())
    assert report["split"] == "dev" and list(report["sequences"]) == ["beta"] and 0.0 <= report["J&F"] <= 1.0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("J&F ")
    assert build_network(weights=tmp_path / "weights.pt", device="cpu").config.name == "fast"


def test_cli_reports_bad_input_without_a_traceback(davis, tmp_path, capsys):
    assert main(_args(tmp_path / "missing", tmp_path / "out", "--steps", "1")) == 2
    assert "vos-ros-train: error:" in capsys.readouterr().err
    assert main(_args(davis, tmp_path / "out", "--steps", "1", "--eval-split", "nosuch")) == 2
    assert "nosuch" in capsys.readouterr().err
    assert main(_args(davis, tmp_path / "out", "--steps", "1", "--resume", str(tmp_path / "none.pt"))) == 2
    with pytest.raises(SystemExit):
        main(_args(davis, tmp_path / "out", "--config", "matching"))
    with pytest.raises(SystemExit):
        main(_args(davis, tmp_path / "out", "--crop", "100x64"))


def test_two_gloo_processes_train_together(davis, tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "vos_ros.cli.train",
        *_args(davis, tmp_path, "--steps", "2", "--threads", "1", "--no-eval", "--device", "cpu"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert (tmp_path / "weights.pt").is_file()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*.pt")) == ["checkpoint-000002.pt"]
    # rank 1 draws other clips, so the logged (rank-averaged) first loss differs from one process alone
    single = tmp_path / "single"
    assert main(_args(davis, single, "--steps", "1", "--threads", "1", "--no-eval", "--device", "cpu")) == 0
    alone = json.loads((single / "train_log.jsonl").read_text().splitlines()[0])
    assert alone["loss_total"] != records[0]["loss_total"]
