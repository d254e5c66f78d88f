"""vos-ros-bag-eval: score a recorded run (the node's label images) against a clip bag's ground truth."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vos_ros.bags.bagfiles import BagError
from vos_ros.bags.clip_bag import GROUND_TRUTH_TOPIC
from vos_ros.bags.scoring import score_bags, score_lines, score_report
from vos_ros.cli.reports import write_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-ros-bag-eval",
        description="Score the label images of a recorded bag against a bag's ground truth, frames matched by stamp "
        "(DAVIS J and F, first and last frame excluded; frames without a prediction count as all background).",
    )
    parser.add_argument("recorded", help="recorded bag (e.g. from vos-ros-replay --record)")
    parser.add_argument("ground_truth", help="bag with ground-truth label images (e.g. from vos-ros-bag-from-davis)")
    parser.add_argument("--labels-topic", help="label image topic of the recorded bag (default: the one .../labels)")
    parser.add_argument("--ground-truth-topic", default=GROUND_TRUTH_TOPIC, help=f"default {GROUND_TRUTH_TOPIC}")
    parser.add_argument("--json", type=Path, help="write the scores to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        score = score_bags(args.recorded, args.ground_truth, args.labels_topic, args.ground_truth_topic)
    except BagError as err:
        print(f"vos-ros-bag-eval: error: {err}", file=sys.stderr)
        return 1
    print("\n".join(score_lines(score)))
    if args.json:
        write_json(args.json, score_report(score))
    return 0


if __name__ == "__main__":
    sys.exit(main())
