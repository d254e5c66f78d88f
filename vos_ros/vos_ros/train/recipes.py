"""Named training recipes: every setting of a training run, as data.

``RECIPES`` maps a name to a frozen ``Recipe``; ``vos-ros-train --recipe NAME`` runs it, each
field can still be overridden by its own flag (``--steps 500``), and the resolved recipe is
printed, written to ``recipe.json`` in the run folder and stored in every checkpoint, so a run
can be repeated from its files (``--recipe path/to/recipe.json``).

Training is two stages. Stage 1 (``*-static`` recipes) learns from synthetic videos made of
the static photos (``vos_ros.train.static``); stage 2 continues on DAVIS from the stage-1
weights, optionally still mixing in static clips (``static_fraction``). A recipe names the
recipe it continues from in ``stage1``: ``vos-ros-train`` then trains that stage first (or
starts from ``--init-from``); ``stage1 == ""`` starts from the ImageNet backbone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from vos_ros.model import LEARNED_CONFIGS, get_config
from vos_ros.train.clips import ClipSpec
from vos_ros.train.loop import TrainSettings


@dataclass(frozen=True)
class Recipe(TrainSettings):
    """One training run's settings (the data paths and the device are not part of it): the
    optimisation settings (``TrainSettings``, here with the shipped defaults) and how clips are drawn."""

    config: str = "full"
    steps: int = 1500
    tune_backbone_blocks: int = 6
    hard_pixel_fraction: float = 0.2
    jaccard_weight: float = 1.0
    crop: tuple[int, int] = (256, 448)
    clip_length: int = 8
    distractor_probability: float = 0.25
    static_fraction: float = 0.0
    stage1: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.config not in LEARNED_CONFIGS:
            raise ValueError(f"recipe config must be one of {', '.join(LEARNED_CONFIGS)}, got {self.config!r}")
        if not 0.0 <= self.static_fraction <= 1.0:
            raise ValueError(f"static_fraction must be in [0, 1], got {self.static_fraction}")
        self.clip_spec()  # a bad clip setting fails here, with the field's own message

    def settings(self) -> TrainSettings:
        """The optimisation settings of this recipe (what a checkpoint stores as ``settings``)."""
        return TrainSettings(**{f.name: getattr(self, f.name) for f in fields(TrainSettings)})

    def clip_spec(self) -> ClipSpec:
        """How clips are drawn, at the config's training scale."""
        return ClipSpec(
            short_side=get_config(self.config).training_scale,
            crop=tuple(self.crop),
            length=self.clip_length,
            distractor_probability=self.distractor_probability,
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "crop": list(self.crop)}


FIELD_NAMES = tuple(f.name for f in fields(Recipe))

_FULL = Recipe()
_FAST = replace(_FULL, config="fast", crop=(224, 384), jaccard_weight=0.0)

RECIPES: dict[str, Recipe] = {
    # Stage 2 of the shipped full weights: DAVIS clips, 20 % of them still static, from full-static.
    "full": replace(_FULL, static_fraction=0.2, stage1="full-static"),
    "fast": _FAST,
    # One stage from ImageNet on DAVIS alone (the shipped full weights before two stages).
    "full-onestage": _FULL,
    # Stage 1: synthetic videos from the static photos only (no DAVIS). 2000 steps (about 48 min on
    # 2 shared CPU cores): 76.0 on dev before any DAVIS frame against 70.1 at 1000, and after stage 2
    # 80.5 +- 0.3 over three seeds against 78.6 +- 2.1 (docs/experiments.md, "A longer stage 1").
    "full-static": replace(_FULL, static_fraction=1.0, steps=2000),
    "fast-static": replace(_FAST, static_fraction=1.0, steps=1000),
}


def stage1_of(name: str, recipe: Recipe) -> tuple[str, Recipe] | None:
    """The named recipe ``recipe`` continues from, or None when it starts from ImageNet."""
    if not recipe.stage1:
        return None
    if recipe.stage1 not in RECIPES:
        raise ValueError(
            f"recipe {name!r} continues from unknown recipe {recipe.stage1!r} (known: {', '.join(RECIPES)})"
        )
    first = RECIPES[recipe.stage1]
    if first.config != recipe.config or first.stage1:
        raise ValueError(
            f"recipe {name!r} cannot continue from {recipe.stage1!r}: stage 1 must be a {recipe.config!r} "
            "recipe that starts from ImageNet"
        )
    return recipe.stage1, first


def _check_fields(values: dict, source: str) -> None:
    unknown = sorted(set(values) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"unknown recipe field(s) {', '.join(unknown)} in {source} (known: {', '.join(FIELD_NAMES)})")


def recipe_from_dict(values: dict, base: Recipe | None = None) -> Recipe:
    """``base`` (default: the field defaults) with ``values`` replaced; unknown fields are an error."""
    _check_fields(values, "recipe")
    values = dict(values)
    if "crop" in values:
        values["crop"] = tuple(int(v) for v in values["crop"])
    for f in fields(Recipe):
        if f.name in values and f.type in ("int", "float") and not isinstance(values[f.name], (int, float)):
            raise ValueError(f"recipe field {f.name} must be a number, got {values[f.name]!r}")
        if f.name in values and f.type == "float":
            values[f.name] = float(values[f.name])
    return replace(base or Recipe(), **values)


def load_recipe(name_or_path: str | Path) -> tuple[str, Recipe]:
    """A recipe by name (``RECIPES``) or from a JSON file written by ``save_recipe``: (name, recipe)."""
    text = str(name_or_path)
    if text in RECIPES:
        return text, RECIPES[text]
    path = Path(text)
    if path.suffix != ".json" or not path.is_file():
        raise ValueError(f"unknown recipe {text!r}: use one of {', '.join(RECIPES)} or a recipe .json file")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read recipe {path}: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("fields"), dict):
        raise ValueError(f"{path} is not a recipe file (needs an object with 'fields')")
    return str(data.get("name", path.stem)), recipe_from_dict(data["fields"])


def recipe_record(name: str, recipe: Recipe) -> dict:
    """What is printed, saved beside a run and stored in its checkpoints."""
    return {"name": name, "fields": recipe.to_dict()}


def save_recipe(path: str | Path, name: str, recipe: Recipe) -> None:
    Path(path).write_text(json.dumps(recipe_record(name, recipe), indent=2) + "\n")
