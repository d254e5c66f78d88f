"""vos-ros-train-prompts: train the prompt head (boxes/clicks -> masks) on cached backbone features."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from vos_ros.model.backbone import STRIDE16_BLOCKS
from vos_ros.train.prompts import build_feature_cache, train_prompt_head, training_backbone


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-ros-train-prompts",
        description=(
            "Train the prompt head on the backbone of the 'full' network (the one stored with --init, or that "
            "of --backbone-of): "
            "features of every training image are computed once into --cache, then the head (and, with "
            "--tune-backbone-blocks, the backbone's last blocks) trains on simulated box and click prompts. "
            "Writes train_log.jsonl and prompt.pt (the head's fp16 weights and its backbone) to --out."
        ),
    )
    parser.add_argument("--static", help="folder of image/mask sets (each <set>/list.txt, images/, masks/)")
    parser.add_argument("--davis", help="DAVIS-layout folder")
    parser.add_argument("--split", default="fit", help="DAVIS split to train on (default fit)")
    parser.add_argument("--davis-every", type=int, default=10, help="use every N-th DAVIS frame (default 10)")
    parser.add_argument(
        "--static-every",
        type=int,
        default=1,
        help="use every N-th static image (default 1; 0: none, e.g. for a cache of composites only)",
    )
    parser.add_argument(
        "--composites", type=int, default=0, help="multi-object composites made from the static images (default 0)"
    )
    parser.add_argument(
        "--cache",
        required=True,
        action="append",
        help="feature cache file, written from the given data if missing; repeat to train on several "
        "(each one present is read as it is)",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--steps", type=int, default=1500, help="optimisation steps (default 1500; 0: only build the cache)"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="images per step (default 4)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    parser.add_argument(
        "--stop-at", type=int, help="stop after this many steps (the learning-rate schedule still spans --steps)"
    )
    parser.add_argument("--init", help="start from these prompt head weights (default: a fresh head)")
    parser.add_argument(
        "--backbone-of",
        help="train on the backbone of these 'full' tracking weights (default: the shipped full.pt; "
        "not with an --init that stores its backbone)",
    )
    parser.add_argument(
        "--width", type=int, default=48, help="channels of a fresh head (default 48; its skip path gets half)"
    )
    parser.add_argument(
        "--tune-backbone-blocks",
        type=int,
        default=0,
        choices=range(STRIDE16_BLOCKS + 1),
        metavar=f"0..{STRIDE16_BLOCKS}",
        help=f"also train the backbone's last N blocks (the {STRIDE16_BLOCKS} at stride 16 at most; default 0)",
    )
    parser.add_argument(
        "--backbone-lr-scale", type=float, default=0.1, help="learning rate of tuned blocks, times --lr (0.1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.static is None and args.davis is None:
        print("vos-ros-train-prompts: give --static and/or --davis", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)

    def log(text: str) -> None:
        print(text, flush=True)

    try:
        return _train(args, log)
    except ValueError as error:  # unreadable --init, a cache of another backbone
        print(f"vos-ros-train-prompts: error: {error}", file=sys.stderr)
        return 2


def _train(args: argparse.Namespace, log) -> int:
    # the caches' and the head's: the one stored with --init, if any, else that of --backbone-of
    backbone = training_backbone(args.init, args.backbone_of)
    cache = []
    for path in args.cache:
        cache += build_feature_cache(
            args.static,
            args.davis,
            args.split,
            path,
            static_every=args.static_every,
            davis_every=args.davis_every,
            composites=args.composites,
            composite_seed=args.seed,
            backbone=backbone,
            log=log,
        )
    if args.steps == 0:
        return 0
    train_prompt_head(
        cache,
        args.out,
        args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        init=args.init,
        stop_at=args.stop_at,
        width=args.width,
        backbone=backbone,
        tune_backbone_blocks=args.tune_backbone_blocks,
        backbone_lr_scale=args.backbone_lr_scale,
        log=log,
    )
    log(f"weights: {Path(args.out) / 'prompt.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
