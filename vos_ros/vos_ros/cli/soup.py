"""vos-ros-soup: average the weights of several training runs (of one config) into one checkpoint."""

from __future__ import annotations

import argparse
import sys

from vos_ros.train.soup import save_average


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-ros-soup",
        description="Write the mean of several checkpoints' weights (a uniform model soup). Use it on runs "
        "that started from the same weights (e.g. one stage-1 checkpoint) with different seeds; the result "
        "loads like any weights file (--weights, the node's weights parameter).",
    )
    parser.add_argument("weights", nargs="+", help="checkpoints to average (two or more, one config)")
    parser.add_argument("--out", required=True, help="checkpoint to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        soup = save_average(args.weights, args.out)
    except ValueError as error:
        print(f"vos-ros-soup: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: config {soup['config']}, mean of {len(soup['soup_of'])} checkpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
