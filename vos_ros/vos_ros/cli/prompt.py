"""vos-ros-prompt: give a running vos_node objects to track from boxes, clicks or a mask file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sensor_msgs.msg import Image

from vos_ros.cli.arguments import box_prompt
from vos_ros.cli.segment import read_first_mask
from vos_ros.eval.davis import DavisError
from vos_ros.ros.client import ClientError, VosClient
from vos_ros.ros.stamps import format_stamp, parse_stamp

NEXT_FRAME_TIMEOUT_S = 10.0


def point_argument(text: str) -> tuple[int, float, float, bool]:
    """'x,y[,+|-][@k]' -> (k, x, y, positive): a click on object (box) k (default 0), positive unless '-'."""
    body, _, index = text.partition("@")
    parts = body.split(",")
    try:
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("+", "-")):
            raise ValueError
        return int(index or 0), float(parts[0]), float(parts[1]), len(parts) == 2 or parts[2] == "+"
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y[,+|-][@box], e.g. 120,80 or 40,60,-@1, got {text!r}") from None


def stamp_argument(text: str) -> str | int:
    """'now', 'newest' or SEC.NSEC (integer nanoseconds for the latter)."""
    if text in ("now", "newest"):
        return text
    try:
        return parse_stamp(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error}, or now, or newest") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-ros-prompt",
        description=(
            "Give a running vos_node objects to track: boxes (~/add_objects; the node's prompt head makes the "
            "masks), optionally with clicks, or a label image (~/set_initial_mask). Prints the new ids, or the "
            "node's reason for refusing (exit status 1)."
        ),
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--box", action="append", type=box_prompt, help="x0,y0,x1,y1[:label] in pixels (repeatable)")
    what.add_argument("--mask", help="label PNG: 0 background, k object k (0/255: one object)")
    parser.add_argument(
        "--point",
        action="append",
        type=point_argument,
        default=[],
        help="click x,y[,+|-][@k] on box k (default 0); + positive (default), - negative (repeatable)",
    )
    parser.add_argument("--label", action="append", default=[], help="object name (repeatable, in box or id order)")
    parser.add_argument("--node", default="/vos_node", help="the node's name with namespace (default /vos_node)")
    parser.add_argument(
        "--camera", default="", help="the camera of a node with the cameras parameter (its ~/<camera>/... services)"
    )
    parser.add_argument(
        "--stamp",
        type=stamp_argument,
        default="newest",
        help="frame the prompt applies to: newest (the newest frame the node holds, default), now (the next "
        "frame the node publishes labels for) or SEC.NSEC (a recent frame with exactly that stamp)",
    )
    parser.add_argument("--replace", action="store_true", help="replace the tracked objects (default: add to them)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the node (default 20)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.point and not args.box:
        print("vos-ros-prompt: error: --point needs --box (clicks refine a box)", file=sys.stderr)
        return 2
    try:
        label_map = read_first_mask(Path(args.mask)) if args.mask else None
    except (DavisError, OSError, ValueError) as error:
        print(f"vos-ros-prompt: error: cannot read {args.mask}: {error}", file=sys.stderr)
        return 2
    try:
        with VosClient(args.node, image_topic=None, camera=args.camera) as client:
            stamp_ns = 0
            if args.stamp == "now":
                labels = client.subscribe(client.topic("labels"), Image)
                if not client.wait(lambda: len(labels) > 0, NEXT_FRAME_TIMEOUT_S):
                    raise ClientError(f"{args.node} published no labels within {NEXT_FRAME_TIMEOUT_S:.0f} s")
                stamp_ns = max(client.snapshot(labels.received_ns))
            elif args.stamp != "newest":
                stamp_ns = args.stamp
            if label_map is not None:
                if not client.wait(client.set_mask_client.service_is_ready, args.timeout):
                    raise ClientError(f"{args.node}/set_initial_mask is not available")
                response = client.set_initial_mask(
                    label_map, stamp_ns, labels=args.label, append=not args.replace, timeout=args.timeout
                )
            else:
                labels = args.label or [label for _, label in args.box]
                if not any(labels):
                    labels = []
                response = client.add_objects(
                    [box for box, _ in args.box],
                    args.point,
                    labels,
                    append=not args.replace,
                    stamp_ns=stamp_ns,
                    timeout=args.timeout,
                )
    except (ClientError, ValueError) as error:
        print(f"vos-ros-prompt: error: {error}", file=sys.stderr)
        return 2
    if not response.success:
        print(f"refused: {response.message}")
        return 1
    where = "newest frame" if stamp_ns == 0 else f"stamp {format_stamp(stamp_ns)} s"
    print(f"ids {' '.join(str(i) for i in response.object_ids)}  ({where}: {response.message})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
