"""vos-ros-train: learn the heads of a config on a DAVIS-layout folder (multi-process with torchrun)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from vos_ros.cli.arguments import image_size
from vos_ros.cli.reports import write_json
from vos_ros.engine.errors import VosError
from vos_ros.eval.davis import DavisDataset, DavisError
from vos_ros.eval.runner import evaluate, format_table
from vos_ros.model import LEARNED_CONFIGS, resolve_device
from vos_ros.train.distributed import exit_worker, init_distributed, shutdown_distributed
from vos_ros.train.loop import WEIGHTS_NAME, Trainer, checkpoint_paths
from vos_ros.train.recipes import (
    FIELD_NAMES,
    RECIPES,
    Recipe,
    load_recipe,
    recipe_from_dict,
    recipe_record,
    save_recipe,
    stage1_of,
)
from vos_ros.train.static import MixedVideos, StaticVideos

RECIPE_NAME = "recipe.json"


def _crop(text: str) -> tuple[int, int]:
    height, width = image_size(text)
    if min(width, height) < 32 or width % 16 or height % 16:
        raise argparse.ArgumentTypeError(f"crop sides must be multiples of 16 and >= 32, got {text!r}")
    return height, width


# Help text of each recipe field's flag (every field of ``Recipe`` gets a flag: --steps, --crop, ...).
_FIELD_HELP = {
    "config": "learned config to train",
    "steps": "total optimisation steps",
    "batch_size": "clips per step and process",
    "lr": "peak learning rate",
    "min_lr_fraction": "the cosine schedule ends at this fraction of --lr",
    "warmup": "linear warm-up steps",
    "weight_decay": "AdamW weight decay",
    "clip_grad_norm": "gradient norm clipping",
    "backbone_lr_scale": "learning rate of the tuned backbone blocks, as a fraction of --lr",
    "tune_backbone_blocks": "also train the last N backbone blocks (0: frozen)",
    "hard_pixel_fraction": "average the foreground and fused losses over this fraction of pixels where they are "
    "largest (bootstrapped loss; 1: all pixels)",
    "jaccard_weight": "weight of the soft IoU loss on the final object masks (0: off)",
    "crop": "training crop WxH at the config's scale",
    "clip_length": "frames per clip: anchor, previous, then frames to segment",
    "distractor_probability": "chance that a pasted object stays unlabelled background",
    "static_fraction": "share of clip sources that are synthetic videos of the --static photos (1: stage 1, "
    "static only; 0: DAVIS only)",
    "stage1": "recipe this one continues from: without --init-from it is trained first into OUT/stage1 "
    "(reused or resumed when there; the other flags apply to it too, except --seed and --static-fraction); "
    "'' starts from the ImageNet backbone",
    "seed": "seed of initialisation and clip sampling",
    "checkpoint_every": "steps between checkpoints",
    "keep_checkpoints": "training checkpoints kept (the newest; weights.pt is always written)",
}


def _field_type(name: str):
    if name == "crop":
        return _crop
    return {"int": int, "float": float, "str": str}[next(f.type for f in fields(Recipe) if f.name == name)]


def _show(name: str, value) -> str:
    return f"{value[1]}x{value[0]}" if name == "crop" else str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-ros-train",
        description=(
            "Train the embedding heads, prototype relation and decoder of a learned config on "
            "clips (anchor, previous, then frames propagated with the network's own masks) with pasted "
            "multi-object composites and unlabelled distractors, cut from DAVIS videos and/or synthetic "
            "videos of static photos; the ImageNet backbone stays frozen except its last "
            "--tune-backbone-blocks blocks. Every setting comes from a named recipe (--recipe; default: the "
            "one named after --config, else 'full'), each field overridable by its own flag. Writes "
            "recipe.json, train_log.jsonl, checkpoint-<step>.pt, weights.pt, loss_curve.png and "
            "eval_<split>.json to --out. Under 'torchrun --nproc_per_node N' it trains with "
            "DistributedDataParallel (gloo on CPU, nccl on CUDA)."
        ),
    )
    parser.add_argument(
        "--recipe",
        help=f"named recipe ({', '.join(RECIPES)}) or a recipe.json written by a run "
        "(default: the recipe named after --config, else 'full')",
    )
    parser.add_argument("--data", help="DAVIS-layout folder (JPEGImages/, Annotations/, ImageSets/)")
    parser.add_argument("--split", help="split to train on (name under ImageSets/ or a list file)")
    parser.add_argument("--static", help="static photo folder (e.g. ../shared/data/static), for static_fraction > 0")
    parser.add_argument("--out", help="output folder")
    parser.add_argument("--resume", help="training checkpoint to continue from (the last stage's)")
    parser.add_argument(
        "--init-from", help="weights to start from, with a fresh optimizer at step 0 (stage 2 from stage 1)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    recipe = RECIPES["full"]
    for f in fields(Recipe):
        flag = "--" + f.name.replace("_", "-")
        kwargs = {"choices": LEARNED_CONFIGS} if f.name == "config" else {}
        parser.add_argument(
            flag,
            dest=f.name,
            type=_field_type(f.name),
            default=argparse.SUPPRESS,
            help=f"{_FIELD_HELP[f.name]} (recipe field; 'full': {_show(f.name, getattr(recipe, f.name))})",
            **kwargs,
        )
    parser.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's choice)")
    parser.add_argument(
        "--eval-split", default="dev", help="split scored at the end with the vos-ros-eval code (default dev)"
    )
    parser.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--show-recipe", action="store_true", help="print the resolved recipe as JSON and exit")
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    """The recipe fields given on the command line."""
    return {name: getattr(args, name) for name in FIELD_NAMES if hasattr(args, name)}


def resolve_recipe(args: argparse.Namespace) -> tuple[str, Recipe]:
    """The named (or file) recipe with every field given on the command line replaced."""
    default = getattr(args, "config", None) if getattr(args, "config", None) in RECIPES else "full"
    name, recipe = load_recipe(args.recipe or default)
    return name, recipe_from_dict(_overrides(args), base=recipe)


# Command-line overrides of these fields apply to the last stage only: those that define a stage, and
# the seed, so that runs of several seeds start from the same stage 1 (as the development runs did).
_LAST_STAGE_ONLY = ("static_fraction", "stage1", "seed")


def _videos(args: argparse.Namespace, recipe: Recipe, dataset: DavisDataset | None):
    """The clip sources of the recipe: DAVIS sequences, static videos, or a mixture."""
    sources, weights = [], []
    if recipe.static_fraction < 1.0:
        sources.append([dataset.sequence(name) for name in dataset.split(args.split)])
        weights.append(1.0 - recipe.static_fraction)
    if recipe.static_fraction > 0.0:
        sources.append(StaticVideos.from_folder(args.static, seed=recipe.seed))
        weights.append(recipe.static_fraction)
    return sources[0] if len(sources) == 1 else MixedVideos(sources, weights)


@dataclass(frozen=True)
class _Stage:
    """One training run of this command: its recipe, folder and what it starts from."""

    name: str
    recipe: Recipe
    out: Path
    init_from: str | None
    resume: str | Path | None


def _stages(args: argparse.Namespace, name: str, recipe: Recipe, first: tuple[str, Recipe] | None) -> list[_Stage]:
    """The runs this command makes: stage 1 (``first``, the recipe ``recipe`` continues from) when
    no --init-from is given (skipped when OUT/stage1 already holds its weights, resumed from its
    newest checkpoint when it holds one), then the recipe itself. The command line's overrides
    apply to stage 1 too, except ``_LAST_STAGE_ONLY``."""
    stages = []
    init_from = args.init_from
    if first is not None and not init_from:
        folder = Path(args.out) / "stage1"
        init_from = str(folder / WEIGHTS_NAME)
        if not (folder / WEIGHTS_NAME).exists():
            shared = {k: v for k, v in _overrides(args).items() if k not in _LAST_STAGE_ONLY}
            checkpoints = checkpoint_paths(folder)
            resume = checkpoints[-1] if checkpoints else None
            stages.append(_Stage(first[0], recipe_from_dict(shared, base=first[1]), folder, None, resume))
    stages.append(_Stage(name, recipe, Path(args.out), init_from, args.resume))
    return stages


def _check_data(parser: argparse.ArgumentParser, args: argparse.Namespace, name: str, recipe: Recipe) -> None:
    if recipe.static_fraction < 1.0 and not (args.data and args.split):
        parser.error(
            f"recipe {name!r} trains on DAVIS (static_fraction {recipe.static_fraction}): give --data and --split"
        )
    if recipe.static_fraction > 0.0 and not args.static:
        parser.error(
            f"recipe {name!r} draws static clips (static_fraction {recipe.static_fraction}): give --static DIR"
        )


def _train(args: argparse.Namespace, stage: _Stage, dataset: DavisDataset | None, context) -> object:
    """One stage: its recipe saved beside it, trained (from its start weights or checkpoint); the network."""
    name, recipe, out = stage.name, stage.recipe, stage.out
    record = recipe_record(name, recipe)
    metadata = {
        "recipe": record,
        "init_from": stage.init_from,
        "data": {"davis": args.data, "split": args.split, "static": args.static},
    }
    if context.is_main:
        print("recipe: " + json.dumps(record), flush=True)
        out.mkdir(parents=True, exist_ok=True)
        save_recipe(out / RECIPE_NAME, name, recipe)
    trainer = Trainer(
        _videos(args, recipe, dataset),
        out,
        recipe.settings(),
        recipe.clip_spec(),
        context,
        progress=not args.no_progress,
        metadata=metadata,
    )
    if stage.init_from:
        trainer.initialise_from(stage.init_from)
    if stage.resume:
        trainer.resume(stage.resume)
    return trainer.run()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        name, recipe = resolve_recipe(args)
        first = stage1_of(name, recipe)
    except ValueError as error:
        parser.error(str(error))
    record = recipe_record(name, recipe)
    if args.show_recipe:
        print(json.dumps(record, indent=2))
        return 0
    if not args.out:
        parser.error("--out is required")
    stages = _stages(args, name, recipe, first)
    for stage in stages:
        _check_data(parser, args, stage.name, stage.recipe)
    if args.threads:
        torch.set_num_threads(args.threads)
    context = None
    finished = False
    code = 0
    try:
        dataset = DavisDataset(args.data) if args.data else None
        eval_names = None if args.no_eval or dataset is None else dataset.split(args.eval_split)
        context = init_distributed(resolve_device(args.device))
        for stage in stages:
            network = _train(args, stage, dataset, context)
        if eval_names is not None and context.is_main:
            report = evaluate(network, dataset.root, eval_names, progress=not args.no_progress)
            report = {
                "davis": str(dataset.root),
                "split": args.eval_split,
                "config": recipe.config,
                "recipe": record,
                "weights": str(Path(args.out) / WEIGHTS_NAME),
                "device": str(network.device),
                **report,
            }
            write_json(Path(args.out) / f"eval_{Path(args.eval_split).stem}.json", report)
            print(format_table(report))
        finished = True
    except (DavisError, VosError, ValueError, OSError) as error:
        print(f"vos-ros-train: error: {error}", file=sys.stderr)
        code = 2
    finally:
        if context is not None:
            shutdown_distributed(context, wait_for_all=finished)
    if context is not None and context.enabled:
        exit_worker(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
