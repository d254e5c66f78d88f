"""Named recipes: the CLI defaults, flag overrides, round trips through recipe.json and checkpoints, clear errors."""

import json
from dataclasses import fields, replace

import pytest
import torch

from vos_ros.cli.train import build_parser, main, resolve_recipe
from vos_ros.model.factory import load_checkpoint
from vos_ros.train.recipes import RECIPES, Recipe, load_recipe, recipe_from_dict, recipe_record, save_recipe


def _resolve(*argv):
    return resolve_recipe(build_parser().parse_args(list(argv)))


def test_the_cli_defaults_are_the_shipped_recipes():
    assert _resolve() == ("full", RECIPES["full"])
    assert _resolve("--config", "fast") == ("fast", RECIPES["fast"])
    assert _resolve("--recipe", "full-static") == ("full-static", RECIPES["full-static"])
    full = RECIPES["full"]
    # the README's shipped full command: 1500 steps, batch 1, 8-frame clips, 6 tuned blocks, hard 20 %, Jaccard 1
    shipped = dict(steps=1500, batch_size=1, clip_length=8, tune_backbone_blocks=6)
    assert all(getattr(full, k) == v for k, v in shipped.items())
    assert (full.hard_pixel_fraction, full.jaccard_weight, full.crop) == (0.2, 1.0, (256, 448))
    # full is two stages: full-static, then DAVIS with 20 % static clips; full-onestage is DAVIS alone
    assert (full.static_fraction, full.stage1) == (0.2, "full-static")
    onestage = RECIPES["full-onestage"]
    assert onestage == replace(full, static_fraction=0.0, stage1="")
    assert RECIPES["full-static"] == replace(onestage, static_fraction=1.0, steps=2000)
    assert RECIPES["fast"] == replace(onestage, config="fast", crop=(224, 384), jaccard_weight=0.0)


@pytest.mark.parametrize(
    ("flags", "field", "value"),
    [
        (("--steps", "7"), "steps", 7),
        (("--crop", "128x64"), "crop", (64, 128)),
        (("--jaccard-weight", "0.5"), "jaccard_weight", 0.5),
        (("--static-fraction", "0.3"), "static_fraction", 0.3),
        (("--config", "fast"), "config", "fast"),
    ],
)
def test_an_override_changes_only_its_field(flags, field, value):
    name, recipe = _resolve("--recipe", "full", *flags)
    assert name == "full" and getattr(recipe, field) == value
    base = RECIPES["full"]
    changed = [f.name for f in fields(Recipe) if getattr(recipe, f.name) != getattr(base, f.name)]
    assert changed == [field]


def test_every_recipe_field_has_a_flag():
    for f in fields(Recipe):
        assert any(f"--{f.name.replace('_', '-')}" in action.option_strings for action in build_parser()._actions)


def test_a_recipe_round_trips_through_its_file(tmp_path):
    recipe = replace(RECIPES["fast"], steps=11, crop=(64, 96), static_fraction=0.25, lr=2e-4)
    path = tmp_path / "recipe.json"
    save_recipe(path, "mine", recipe)
    assert load_recipe(path) == ("mine", recipe)
    assert _resolve("--recipe", str(path), "--seed", "3") == ("mine", replace(recipe, seed=3))


def test_unknown_recipes_fields_and_bad_values_are_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--recipe", "nosuch", "--show-recipe"])
    assert "unknown recipe 'nosuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--recipe", "full", "--no-such-field", "1", "--show-recipe"])
    assert "--no-such-field" in capsys.readouterr().err
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "bad", "fields": {"steps": 5, "learning_rate": 1.0}}))
    with pytest.raises(SystemExit):
        main(["--recipe", str(path), "--show-recipe"])
    assert "unknown recipe field(s) learning_rate" in capsys.readouterr().err
    with pytest.raises(ValueError, match="static_fraction"):
        recipe_from_dict({"static_fraction": 2.0})
    with pytest.raises(ValueError, match="number"):
        recipe_from_dict({"lr": "fast"})
    with pytest.raises(ValueError, match="not a recipe file"):
        path.write_text("[1, 2]")
        load_recipe(path)
    with pytest.raises(SystemExit):
        main(["--recipe", "full-onestage", "--out", str(tmp_path / "o")])  # DAVIS recipe without --data
    assert "give --data and --split" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--recipe", "full-static", "--out", str(tmp_path / "o")])
    assert "give --static DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # its stage 1 needs the static photos
        main(["--recipe", "full", "--data", "d", "--split", "fit", "--out", str(tmp_path / "o")])
    assert "recipe 'full-static' draws static clips" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--recipe", "full", "--stage1", "nosuch", "--show-recipe"])
    assert "continues from unknown recipe 'nosuch'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--recipe", "fast", "--stage1", "full-static", "--show-recipe"])
    assert "stage 1 must be a 'fast' recipe" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_show_recipe_prints_the_resolved_recipe(capsys):
    assert main(["--recipe", "fast", "--steps", "9", "--show-recipe"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == recipe_record("fast", replace(RECIPES["fast"], steps=9))


TINY = ("--crop", "96x64", "--clip-length", "3", "--tune-backbone-blocks", "0", "--threads", "2", "--no-progress")


def test_two_stages_store_the_recipe_and_stage_2_starts_from_stage_1(davis, static_folder, tmp_path, capsys):
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    args1 = ["--recipe", "fast-static", "--static", str(static_folder), "--out", str(stage1), "--steps", "2", *TINY]
    assert main(args1) == 0
    assert "recipe: " in capsys.readouterr().out
    name, recipe = load_recipe(stage1 / "recipe.json")
    assert name == "fast-static" and recipe.static_fraction == 1.0 and recipe.steps == 2
    weights = load_checkpoint(stage1 / "weights.pt")
    assert weights["recipe"] == recipe_record(name, recipe)
    assert load_checkpoint(stage1 / "checkpoint-000002.pt")["recipe"] == weights["recipe"]
    assert weights["data"]["static"] == str(static_folder) and weights["init_from"] is None
    # a run's recipe.json repeats it exactly
    assert _resolve("--recipe", str(stage1 / "recipe.json")) == (name, recipe)

    args2 = ["--recipe", "fast", "--data", str(davis), "--split", "fit", "--static", str(static_folder)]
    args2 += ["--static-fraction", "0.5", "--init-from", str(stage1 / "weights.pt"), "--steps", "1", "--no-eval"]
    assert main([*args2, "--out", str(stage2), "--lr", "1e-12", "--warmup", "1", *TINY]) == 0
    second = load_checkpoint(stage2 / "weights.pt")
    assert second["init_from"] == str(stage1 / "weights.pt") and second["recipe"]["fields"]["static_fraction"] == 0.5
    # with a vanishing learning rate the trainable weights stay those of stage 1 (not a fresh initialisation)
    for key, value in weights["state_dict"].items():
        assert torch.allclose(value.float(), second["state_dict"][key].float(), atol=1e-6), key
    # stage-1 weights of another config are refused with a clear message (exit code 2, no traceback)
    capsys.readouterr()
    assert main([*args2, "--out", str(tmp_path / "wrong"), "--config", "full", *TINY]) == 2
    assert "are for config 'fast', not 'full'" in capsys.readouterr().err


def test_one_command_trains_stage_1_first_then_reuses_it(davis, static_folder, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--recipe", "fast", "--stage1", "fast-static", "--static-fraction", "0.5", "--data", str(davis)]
    args += ["--split", "fit", "--static", str(static_folder), "--out", str(out), "--steps", "2", "--no-eval", *TINY]
    args += ["--checkpoint-every", "1", "--seed", "3"]
    assert main(args) == 0
    assert capsys.readouterr().out.count("recipe: ") == 2
    first = load_checkpoint(out / "stage1" / "weights.pt")
    # stage 1 is its own recipe with the command line's shared overrides (steps, crop), not the stage
    # fields nor the seed (runs of several seeds share one stage 1)
    assert first["recipe"]["name"] == "fast-static" and first["step"] == 2
    assert first["recipe"]["fields"]["static_fraction"] == 1.0 and first["recipe"]["fields"]["crop"] == [64, 96]
    assert first["recipe"]["fields"]["seed"] == 0
    second = load_checkpoint(out / "weights.pt")
    assert second["init_from"] == str(out / "stage1" / "weights.pt")
    assert (
        second["recipe"]["fields"]["static_fraction"] == 0.5 and second["recipe"]["fields"]["stage1"] == "fast-static"
    )
    # run again: stage 1's weights are there, so only stage 2 trains
    stamp = (out / "stage1" / "weights.pt").stat().st_mtime_ns
    assert main(args) == 0
    assert capsys.readouterr().out.count("recipe: ") == 1
    assert (out / "stage1" / "weights.pt").stat().st_mtime_ns == stamp
    # a stage 1 that stopped early resumes from its newest checkpoint instead of starting again
    (out / "stage1" / "weights.pt").unlink()
    (out / "stage1" / "checkpoint-000002.pt").unlink()
    assert (out / "stage1" / "checkpoint-000001.pt").exists()
    assert main(args) == 0
    log = [json.loads(line) for line in (out / "stage1" / "train_log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in log] == [1, 2]  # resumed at step 2: no step trained twice
    assert (out / "stage1" / "weights.pt").exists()


def test_a_recipe_is_its_training_settings_plus_how_clips_are_drawn():
    from dataclasses import fields, replace

    from vos_ros.train.loop import TrainSettings
    from vos_ros.train.recipes import RECIPES

    recipe = replace(RECIPES["fast"], lr=5e-4, tune_backbone_blocks=3, keep_checkpoints=4)
    settings = recipe.settings()
    assert type(settings) is TrainSettings
    assert {f.name: getattr(settings, f.name) for f in fields(TrainSettings)} == {
        f.name: getattr(recipe, f.name) for f in fields(TrainSettings)
    }
    assert (settings.lr, settings.tune_backbone_blocks, settings.keep_checkpoints) == (5e-4, 3, 4)
    assert recipe.clip_spec().crop == (224, 384)
