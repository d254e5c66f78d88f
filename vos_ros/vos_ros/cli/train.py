"""vos-ros-train: learn the heads of a config on a DAVIS-layout folder (multi-process with torchrun)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from vos_ros.cli.arguments import image_size
from vos_ros.engine.errors import VosError
from vos_ros.eval.davis import DavisDataset, DavisError
from vos_ros.eval.runner import evaluate, format_table
from vos_ros.model import CONFIGS, LEARNED_CONFIGS, resolve_device
from vos_ros.train.clips import ClipSpec
from vos_ros.train.distributed import exit_worker, init_distributed, shutdown_distributed
from vos_ros.train.loop import WEIGHTS_NAME, Trainer, TrainSettings


def _crop(text: str) -> tuple[int, int]:
    height, width = image_size(text)
    if min(width, height) < 32 or width % 16 or height % 16:
        raise argparse.ArgumentTypeError(f"crop sides must be multiples of 16 and >= 32, got {text!r}")
    return height, width


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-ros-train",
        description=(
            "Train the embedding heads, prototype relation and decoder of a learned config on "
            "clips (anchor, previous, then frames propagated with the network's own masks) with pasted "
            "multi-object composites and unlabelled distractors; the ImageNet backbone stays "
            "frozen except its last --tune-backbone-blocks blocks. Writes train_log.jsonl, checkpoint-<step>.pt, weights.pt, "
            "loss_curve.png and eval_<split>.json to --out. Under 'torchrun --nproc_per_node N' "
            "it trains with DistributedDataParallel (gloo on CPU, nccl on CUDA)."
        ),
    )
    parser.add_argument("--config", required=True, choices=LEARNED_CONFIGS, help="learned config to train")
    parser.add_argument("--data", required=True, help="DAVIS-layout folder (JPEGImages/, Annotations/, ImageSets/)")
    parser.add_argument("--split", required=True, help="split to train on (name under ImageSets/ or a list file)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--resume", help="training checkpoint to continue from")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--steps", type=int, default=1500, help="total optimisation steps (default 1500)")
    parser.add_argument("--batch-size", type=int, default=1, help="clips per step and process (default 1)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument(
        "--crop", type=_crop, default=(256, 448), help="training crop WxH at the config's scale (default 448x256)"
    )
    parser.add_argument(
        "--clip-length",
        type=int,
        default=3,
        help="frames per clip: anchor, previous, then frames to segment (default 3)",
    )
    parser.add_argument(
        "--distractor-probability",
        type=float,
        default=0.25,
        help="chance that a pasted object stays unlabelled background (default 0.25)",
    )
    parser.add_argument(
        "--tune-backbone-blocks",
        type=int,
        default=0,
        help="also train the last N backbone blocks, at a tenth of the learning rate (default 0: frozen)",
    )
    parser.add_argument(
        "--hard-pixel-fraction",
        type=float,
        default=1.0,
        help="average the foreground and fused losses over this fraction of pixels where they are largest "
        "(bootstrapped loss; default 1: all pixels)",
    )
    parser.add_argument(
        "--jaccard-weight",
        type=float,
        default=0.0,
        help="weight of the soft IoU loss on the final object masks, added to the others (default 0: off)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and clip sampling (default 0)")
    parser.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints (default 250)")
    parser.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's choice)")
    parser.add_argument(
        "--eval-split", default="dev", help="split scored at the end with the vos-ros-eval code (default dev)"
    )
    parser.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    context = None
    finished = False
    code = 0
    try:
        dataset = DavisDataset(args.data)
        videos = [dataset.sequence(name) for name in dataset.split(args.split)]
        eval_names = None if args.no_eval else dataset.split(args.eval_split)
        settings = TrainSettings(
            config=args.config,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            checkpoint_every=args.checkpoint_every,
            tuned_backbone_blocks=args.tune_backbone_blocks,
            hard_pixel_fraction=args.hard_pixel_fraction,
            jaccard_weight=args.jaccard_weight,
        )
        spec = ClipSpec(
            short_side=CONFIGS[args.config].training_scale,
            crop=args.crop,
            length=args.clip_length,
            distractor_probability=args.distractor_probability,
        )
        context = init_distributed(resolve_device(args.device))
        trainer = Trainer(videos, args.out, settings, spec, context, progress=not args.no_progress)
        if args.resume:
            trainer.resume(args.resume)
        network = trainer.run()
        if eval_names is not None and context.is_main:
            report = evaluate(network, dataset.root, eval_names, progress=not args.no_progress)
            report = {
                "davis": str(dataset.root),
                "split": args.eval_split,
                "config": args.config,
                "weights": str(Path(args.out) / WEIGHTS_NAME),
                "device": str(network.device),
                **report,
            }
            (Path(args.out) / f"eval_{Path(args.eval_split).stem}.json").write_text(json.dumps(report, indent=2) + "\n")
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
