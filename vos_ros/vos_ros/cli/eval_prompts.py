"""vos-ros-eval-prompts: box -> mask mean IoU of the prompt head on DAVIS frames, GrabCut as the baseline."""

from __future__ import annotations

import argparse
import sys

from vos_ros.cli.arguments import add_refine_argument, short_side
from vos_ros.cli.reports import write_json
from vos_ros.engine.errors import VosError
from vos_ros.eval.davis import DavisDataset, DavisError
from vos_ros.eval.prompts import GROW, JITTER, evaluate_prompts, format_prompt_table
from vos_ros.model import build_network
from vos_ros.model.prompt import (
    PROMPT_SHORT_SIDE,
    PROMPT_WEIGHTS,
    REFINE_ITERATIONS,
    REFINE_SIDE,
    REFINE_SURE,
    build_prompt_model,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-ros-eval-prompts",
        description=(
            "Prompt the head with boxes from the ground truth on the first frame and every --every-th frame of "
            f"each sequence: the true box grown by {GROW:.0%} of its size on every side, and that box jittered "
            f"(each side moved by N(0, {JITTER:.0%}) of its size). Mean IoU per sequence and overall, with "
            "OpenCV GrabCut on the same boxes as the baseline. The last line is 'mIoU x GrabCut y' in percent."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--davis", help="DAVIS-layout folder")
    source.add_argument(
        "--static",
        help="static photo folder (<set>/list.txt, images/, masks/) instead of DAVIS: photos --static-offset, "
        "--static-offset + --every, ... of each set",
    )
    parser.add_argument(
        "--static-offset",
        type=int,
        default=1,
        help="first static photo of each set (default 1: the shipped head trained on every second photo from 0)",
    )
    parser.add_argument("--split", help="split name or list file (default: dev if it exists, else val)")
    parser.add_argument("--sequences", help="comma-separated sequence names (overrides --split)")
    parser.add_argument("--every", type=int, default=10, help="frame step (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the box jitter (default 0)")
    parser.add_argument("--no-grabcut", action="store_true", help="skip the GrabCut baseline (slow: ~2 s per box)")
    parser.add_argument("--weights", help="prompt head weights (default: the ones shipped with the package)")
    add_refine_argument(parser, REFINE_ITERATIONS)
    parser.add_argument(
        "--short-side",
        type=short_side,
        default=PROMPT_SHORT_SIDE,
        help=f"short side (px) the frame is resized to for the head's backbone pass (default {PROMPT_SHORT_SIDE})",
    )
    parser.add_argument(
        "--refine-side",
        type=int,
        default=REFINE_SIDE,
        help=f"long side (px) of the crop the colour refinement works on (default {REFINE_SIDE})",
    )
    parser.add_argument(
        "--refine-sure",
        type=float,
        default=REFINE_SURE,
        help=f"head probability above which (below 1 - which) the refinement keeps a pixel (default {REFINE_SURE})",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--json", help="write the report (fractions in [0, 1]) here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    checks = [
        (args.every >= 1, "--every must be >= 1"),
        (args.static_offset >= 0, "--static-offset must be >= 0"),
        (args.refine_side >= 8, "--refine-side must be >= 8"),
        (0.5 < args.refine_sure < 1.0, "--refine-sure must be in (0.5, 1)"),
    ]
    problem = next((message for ok, message in checks if not ok), None)
    if problem:
        print(f"vos-ros-eval-prompts: error: {problem}", file=sys.stderr)
        return 2
    split, sequences, root = None, [], None
    try:
        if args.davis:
            dataset = DavisDataset(args.davis)
            root = dataset.root
            if args.sequences:
                sequences = [name.strip() for name in args.sequences.split(",") if name.strip()]
            else:
                split = args.split or dataset.default_split()
                sequences = dataset.split(split)
            for name in sequences:
                dataset.sequence(name)
        network = build_network("full", device=args.device)
        model = build_prompt_model(network, args.weights)
        model.refine_iterations = args.refine_iterations
        model.refine_side, model.refine_sure = args.refine_side, args.refine_sure
        model.short_side = args.short_side
        report = evaluate_prompts(
            network,
            root,
            sequences,
            every=args.every,
            grabcut=not args.no_grabcut,
            seed=args.seed,
            progress=not args.no_progress,
            model=model,
            static_root=args.static,
            static_offset=args.static_offset,
        )
    except (DavisError, VosError, ValueError, OSError) as error:
        print(f"vos-ros-eval-prompts: error: {error}", file=sys.stderr)
        return 2
    report = {
        "davis": str(root) if root is not None else None,
        "static": args.static,
        "static_offset": args.static_offset if args.static else None,
        "split": split,
        "weights": args.weights or str(PROMPT_WEIGHTS),
        **report,
    }
    if args.json:
        write_json(args.json, report)
    print(format_prompt_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
