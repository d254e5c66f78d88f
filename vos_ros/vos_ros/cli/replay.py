"""vos-ros-replay: replay a clip bag through vos_node over DDS, record its outputs, score them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vos_ros.bags.bagfiles import STORAGES, BagError
from vos_ros.bags.clip_bag import GROUND_TRUTH_TOPIC, IMAGE_TOPIC, INITIAL_MASK_TOPIC
from vos_ros.bags.replay import ReplayError, ReplayOptions, replay
from vos_ros.cli.reports import write_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-ros-replay",
        description=(
            "Replay a bag's images through vos_node (started here with use_sim_time, or a running one with "
            "--no-launch) with their original stamps and a /clock, send the bag's initial mask to "
            "~/set_initial_mask, record the node's outputs, and print throughput, end-to-end latency, dropped "
            "frames and, when the bag holds ground truth, DAVIS J&F."
        ),
    )
    parser.add_argument("bag", type=Path, help="input bag (e.g. from vos-ros-bag-from-davis)")
    parser.add_argument("--image-topic", default=IMAGE_TOPIC, help=f"default {IMAGE_TOPIC}")
    parser.add_argument("--mask-topic", default=INITIAL_MASK_TOPIC, help=f"default {INITIAL_MASK_TOPIC}")
    parser.add_argument("--ground-truth-topic", default=GROUND_TRUTH_TOPIC, help=f"default {GROUND_TRUTH_TOPIC}")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="speed relative to the bag's timing; 0 (default): next frame as soon as the node answered the last",
    )
    parser.add_argument("--record", type=Path, help="write the node's outputs to this new bag")
    parser.add_argument(
        "--storage", choices=sorted(STORAGES), default="mcap", help="storage of --record (default mcap)"
    )
    parser.add_argument("--record-overlay", action="store_true", help="also record ~/overlay (costs the node time)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--node", default="/vos_node", help="fully qualified node name (default /vos_node)")
    parser.add_argument("--no-launch", action="store_true", help="use a running vos_node (with use_sim_time) instead")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for the node (120)")
    parser.add_argument("--frame-timeout", type=float, default=30.0, help="seconds to wait for one frame's labels (30)")
    parser.add_argument("--node-log", type=Path, help="where the started node's output goes")
    parser.add_argument(
        "--node-args",
        nargs=argparse.REMAINDER,
        default=[],
        help="ROS arguments for the started node, e.g. --node-args -p config:=matching (must come last)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = ReplayOptions(
        bag=args.bag,
        image_topic=args.image_topic,
        mask_topic=args.mask_topic,
        ground_truth_topic=args.ground_truth_topic,
        rate=args.rate,
        record=args.record,
        storage=args.storage,
        record_overlay=args.record_overlay,
        node=args.node,
        launch=not args.no_launch,
        node_args=list(args.node_args),
        startup_timeout=args.startup_timeout,
        frame_timeout=args.frame_timeout,
        log_path=args.node_log,
    )
    try:
        result = replay(options, progress=lambda line: print(line, file=sys.stderr, flush=True))
    except (BagError, ReplayError) as err:
        print(f"vos-ros-replay: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vos-ros-replay: interrupted", file=sys.stderr)
        return 130
    print("\n".join(result.lines()))
    if args.json:
        write_json(args.json, result.report())
    if args.rate == 0 and result.dropped:
        print(f"vos-ros-replay: error: {result.dropped} frame(s) got no labels at rate 0", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
