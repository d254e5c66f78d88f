"""vos-ros-eval: score a network on a DAVIS-layout folder with the official DAVIS protocol."""

from __future__ import annotations

import argparse
import sys

from vos_ros.cli.arguments import add_backend_arguments, add_refine_argument, add_short_side_argument
from vos_ros.cli.reports import write_json
from vos_ros.engine.errors import VosError
from vos_ros.engine.fragments import FragmentFilter
from vos_ros.engine.prompts import shared_prompt_model
from vos_ros.engine.session import Session
from vos_ros.eval.davis import DavisDataset, DavisError
from vos_ros.eval.runner import evaluate, format_table
from vos_ros.model import DEFAULT_CONFIG, build_network
from vos_ros.model.backends import make_backend
from vos_ros.model.factory import shipped_weights
from vos_ros.model.prompt import REFINE_ITERATIONS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-ros-eval",
        description=(
            "Segment every sequence of a DAVIS split from its first-frame annotation and report "
            "J (region IoU), F (boundary F, tolerance 0.008 x diagonal) and J&F, first and last frame "
            "excluded, averaged over all objects. The last line is 'J&F <x> J <x> F <x>' in percent."
        ),
    )
    parser.add_argument("--davis", required=True, help="DAVIS-layout folder (JPEGImages/, Annotations/, ImageSets/)")
    parser.add_argument(
        "--split",
        help="split name under ImageSets/ or a path to a list file (default: dev if ImageSets/dev.txt exists, else val)",
    )
    parser.add_argument("--sequences", help="comma-separated sequence names (overrides --split)")
    parser.add_argument("--config", help=f"network config name (default: the checkpoint's, else {DEFAULT_CONFIG})")
    parser.add_argument("--weights", help="checkpoint path (default: the weights shipped for the config)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    add_backend_arguments(parser)
    add_short_side_argument(parser)
    parser.add_argument(
        "--keep-fragments",
        action="store_true",
        help="keep the small detached pieces of an object away from where it was (the session drops them by default)",
    )
    parser.add_argument(
        "--init",
        choices=("mask", "box"),
        default="mask",
        help="start each sequence from its first annotation (mask, default) or from the prompt head's masks of "
        "the first frame's true boxes grown 5%% on each side (box)",
    )
    add_refine_argument(parser, REFINE_ITERATIONS)
    parser.add_argument("--json", help="write the report (fractions in [0, 1], per sequence and object) here")
    parser.add_argument("--save-masks", help="write predicted indexed PNG masks to DIR/<sequence>/")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        dataset = DavisDataset(args.davis)
        if args.sequences:
            sequences = [name.strip() for name in args.sequences.split(",") if name.strip()]
            split = None
        else:
            split = args.split or dataset.default_split()
            sequences = dataset.split(split)
        for name in sequences:  # fail on a bad layout before loading the network
            dataset.sequence(name)
        network = make_backend(build_network(args.config, args.weights, args.device), args.backend, args.graph_dir)
        short_side = args.short_side or network.config.short_side
        if args.init == "box":
            shared_prompt_model(network).refine_iterations = args.refine_iterations
        fragment_filter = None if args.keep_fragments else FragmentFilter()
        report = evaluate(
            network,
            dataset.root,
            sequences,
            save_masks=args.save_masks,
            progress=not args.no_progress,
            session_factory=lambda net: Session(net, short_side=short_side, fragment_filter=fragment_filter),
            init=args.init,
        )
    except (DavisError, VosError, ValueError, OSError) as error:
        print(f"vos-ros-eval: error: {error}", file=sys.stderr)
        return 2
    weights = args.weights or shipped_weights(network.config.name)
    report = {
        "davis": str(dataset.root),
        "split": split,
        "config": network.config.name,
        "short_side": short_side,
        "init": args.init,
        "refine_iterations": args.refine_iterations if args.init == "box" else None,
        "drop_fragments": fragment_filter is not None,
        "weights": str(weights) if weights else None,
        "backend": args.backend,
        "device": str(network.device),
        **report,
    }
    if args.json:
        write_json(args.json, report)
    print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
