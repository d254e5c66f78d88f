"""vos-ros-bag-from-davis: write a DAVIS-layout sequence as a rosbag2 (frames, ground truth, initial mask)."""

from __future__ import annotations

import argparse
import sys

from vos_ros.bags.bagfiles import STORAGES, BagError
from vos_ros.bags.clip_bag import (
    COMPRESSED_IMAGE_TOPIC,
    GROUND_TRUTH_TOPIC,
    IMAGE_TOPIC,
    INITIAL_MASK_TOPIC,
    write_clip_bag,
)
from vos_ros.eval.davis import DavisDataset, DavisError
from vos_ros.ros.compressed import CODECS, DEFAULT_JPEG_QUALITY


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-ros-bag-from-davis",
        description=(
            f"Write a DAVIS-layout sequence as a rosbag2: frames on {IMAGE_TOPIC} (rgb8), ground-truth "
            f"label images on {GROUND_TRUTH_TOPIC} (mono16) and the first frame's labels on {INITIAL_MASK_TOPIC}."
        ),
    )
    parser.add_argument(
        "--davis", required=True, help="DAVIS-layout folder (JPEGImages/, Annotations/; every frame annotated)"
    )
    parser.add_argument("--sequence", required=True, help="sequence name, e.g. bus")
    parser.add_argument("--out", required=True, help="output bag folder (must not exist)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of the stamps (default 30)")
    parser.add_argument("--frame-id", default="camera", help="header frame_id (default camera)")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="storage plugin (default mcap)")
    parser.add_argument(
        "--compressed",
        choices=CODECS,
        help=f"write the frames as sensor_msgs/CompressedImage ({' or '.join(CODECS)}) on {COMPRESSED_IMAGE_TOPIC} "
        f"instead of rgb8 on {IMAGE_TOPIC}",
    )
    parser.add_argument(
        "--jpeg-quality",
        type=int,
        default=DEFAULT_JPEG_QUALITY,
        help=f"JPEG quality 1-100 with --compressed jpeg (default {DEFAULT_JPEG_QUALITY})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        count = write_clip_bag(
            args.out,
            DavisDataset(args.davis).sequence(args.sequence).frames(),
            fps=args.fps,
            frame_id=args.frame_id,
            storage=args.storage,
            compressed=args.compressed,
            jpeg_quality=args.jpeg_quality,
        )
    except (BagError, DavisError, OSError) as err:
        print(f"vos-ros-bag-from-davis: error: {err}", file=sys.stderr)
        return 1
    kind = f", {args.compressed} on {COMPRESSED_IMAGE_TOPIC}" if args.compressed else ""
    print(f"wrote {count} frames of {args.sequence} to {args.out} ({args.storage}{kind})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
