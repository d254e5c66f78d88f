"""vos-ros-segment: segment a folder of frames from the label image of the first frame."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vos_ros.cli.arguments import add_backend_arguments, box_prompt
from vos_ros.engine.errors import VosError
from vos_ros.engine.session import Session
from vos_ros.eval.davis import DavisError, read_image, read_label_png, write_label_png
from vos_ros.model import DEFAULT_CONFIG, build_network
from vos_ros.model.backends import make_backend
from vos_ros.overlay import overlay_rgb

FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-ros-segment",
        description="Segment every object of the first frame's label image (or of boxes drawn on the first "
        "frame) through a folder of frames (sorted by name). Writes one indexed label PNG per frame and an "
        "overlay video.",
    )
    parser.add_argument("--frames", required=True, help="folder of frames (jpg/png), sorted by file name")
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument(
        "--mask", help="label PNG of the first frame: 0 background, k object k (0/255 masks: one object)"
    )
    start.add_argument(
        "--box",
        action="append",
        type=box_prompt,
        help="x0,y0,x1,y1[:label] in first-frame pixels: one object per box (repeat for more); the prompt head "
        "makes the first masks, ids 1..K in the given order",
    )
    parser.add_argument("--out", default="segment_output", help="output folder (default segment_output)")
    parser.add_argument("--config", help=f"network config (default: the checkpoint's, else {DEFAULT_CONFIG})")
    parser.add_argument("--weights", help="checkpoint path (default: the weights shipped for the config)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    add_backend_arguments(parser)
    parser.add_argument("--labels", help="comma-separated object names, in id order")
    parser.add_argument("--fps", type=float, default=24.0, help="overlay video frame rate (default 24)")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay colour weight in [0, 1] (default 0.5)")
    return parser


def read_first_mask(path: Path) -> np.ndarray:
    """The first-frame label map; a DAVIS 2016 style 0/255 mask becomes object 1."""
    raw = read_label_png(path)
    if set(np.unique(raw).tolist()) == {0, 255}:
        return (raw != 0).astype(np.uint16)
    return raw


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    frames_dir, out = Path(args.frames), Path(args.out)
    frames = (
        sorted(p for p in frames_dir.iterdir() if p.suffix.lower() in FRAME_SUFFIXES) if frames_dir.is_dir() else []
    )
    if not frames:
        print(f"vos-ros-segment: error: no frames (jpg/png) in {frames_dir}", file=sys.stderr)
        return 2
    writer = None
    try:
        network = make_backend(build_network(args.config, args.weights, args.device), args.backend, args.graph_dir)
        session = Session(network)
        first = read_image(frames[0])
        labels = args.labels.split(",") if args.labels else None
        if args.box:
            names = labels or [label for _, label in args.box]
            prompted = session.add_objects(first, [box for box, _ in args.box], labels=names, append=False)
            ids, label_map = prompted.ids, prompted.label_map
        else:
            label_map = read_first_mask(Path(args.mask))
            ids = session.set_mask(first, label_map, labels=labels)
        video_path = out / "overlay.mp4"
        out.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(
            str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (first.shape[1], first.shape[0])
        )
        image = first
        total_ms = 0.0
        for index, path in enumerate(tqdm(frames, desc="segment", unit="frame")):
            if index:
                image = read_image(path)
                result = session.step(image)
                label_map, total_ms = result.label_map, total_ms + result.model_ms
            write_label_png(out / "masks" / f"{path.stem}.png", label_map)
            writer.write(cv2.cvtColor(overlay_rgb(image, label_map, args.alpha), cv2.COLOR_RGB2BGR))
    except (DavisError, VosError, ValueError, OSError) as error:
        print(f"vos-ros-segment: error: {error}", file=sys.stderr)
        return 2
    finally:
        if writer is not None:
            writer.release()
    steps = max(1, len(frames) - 1)
    print(f"objects {ids}  frames {len(frames)}  config {network.config.name}  {total_ms / steps:.1f} ms/frame")
    print(f"wrote {out / 'masks'}/*.png and {video_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
