"""The static photo folder reader, and box -> mask evaluation on static photos."""

import json
import re

import pytest
from static_photos import write_static_folder

from vos_ros.cli.eval_prompts import main as prompts_main
from vos_ros.eval.static import read_static_pair, static_items, static_pairs, static_sets

LAST_LINE = re.compile(r"^mIoU (\d+\.\d) GrabCut -$")


@pytest.fixture(scope="module")
def static_folder(tmp_path_factory):
    return write_static_folder(tmp_path_factory.mktemp("static"))  # sets one (photo0-2) and two (photo3-4)


def test_sets_are_read_in_list_order_and_stepped_per_set(static_folder):
    sets = static_sets(static_folder)
    assert list(sets) == ["one", "two"]
    assert [image.stem for image, _ in sets["one"]] == ["photo0", "photo1", "photo2"]
    assert [image.stem for image, _ in static_pairs(static_folder)] == [f"photo{i}" for i in range(5)]
    # each set is stepped on its own: offset 1, step 2 -> one/photo1 and two/photo4 (not a global stride)
    assert [name for name, _, _ in static_items(static_folder, every=2, offset=1)] == ["one/photo1", "two/photo4"]
    photo, mask = read_static_pair(*sets["two"][0])
    assert photo.shape[:2] == mask.shape and set(mask.ravel().tolist()) == {0, 1}


def test_eval_prompts_on_held_out_static_photos(static_folder, tmp_path, capsys):
    path = tmp_path / "static.json"
    args = ["--static", str(static_folder), "--every", "1", "--no-grabcut", "--no-progress", "--json", str(path)]
    assert prompts_main([*args, "--refine-side", "64", "--refine-sure", "0.95", "--short-side", "256"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert LAST_LINE.match(lines[-1]), lines[-1]
    report = json.loads(path.read_text())
    assert report["static_offset"] == 1 and report["davis"] is None
    assert (report["refine_side"], report["refine_sure"], report["short_side"]) == (64, 0.95, 256)
    # offset 1: photos 1-2 of set one, photo 4 of set two; two boxes (grown, jittered) each
    assert {name: e["n_samples"] for name, e in report["sequences"].items()} == {"one": 4, "two": 2}
    assert report["mean_iou"] >= 0.5  # an ellipse on a coarse texture is an easy box prompt


def test_eval_prompts_refuses_bad_static_arguments(static_folder, tmp_path, capsys):
    base = ["--static", str(static_folder), "--no-grabcut", "--no-progress"]
    assert prompts_main([*base, "--refine-sure", "1.2"]) == 2
    assert "--refine-sure" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prompts_main([*base, "--short-side", "2"])
    assert "--short-side" in capsys.readouterr().err
    assert prompts_main([*base, "--static-offset", "7"]) == 2
    assert "no photos" in capsys.readouterr().err
    assert prompts_main(["--static", str(tmp_path), "--no-progress"]) == 2
    assert "list.txt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prompts_main([*base, "--davis", str(tmp_path)])
