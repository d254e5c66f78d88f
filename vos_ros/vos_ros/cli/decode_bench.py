"""vos-ros-decode-bench: ms per frame to turn each input the node accepts into RGB (raw encodings, JPEG and
PNG CompressedImage) and to encode the ~/overlay/compressed JPEG, at one image size (default 640x480)."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from vos_ros.cli.arguments import image_size
from vos_ros.cli.reports import write_json
from vos_ros.ros.compressed import compressed_format, compressed_to_rgb, encode_rgb
from vos_ros.ros.convert import image_to_rgb, rgb_to_image
from vos_ros.ros.stamps import make_header
from vos_ros.synthetic import make_clip

RAW_ENCODINGS = ("rgb8", "bgr8", "mono16", "rgb16", "yuv422", "yuv422_yuy2", "bayer_rggb8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vos-ros-decode-bench", description=__doc__)
    parser.add_argument("--size", type=image_size, default=(480, 640), help="WIDTHxHEIGHT (default 640x480)")
    parser.add_argument(
        "--image", type=Path, help="an image file to use, resized to --size (default: a synthetic frame)"
    )
    parser.add_argument("--jpeg-quality", type=int, default=80, help="quality of the JPEG inputs and overlay (80)")
    parser.add_argument("--frames", type=int, default=200, help="timed conversions per input (default 200)")
    parser.add_argument("--cv-threads", type=int, default=1, help="OpenCV threads (default 1; -1: OpenCV's default)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser


def _frame(size: tuple[int, int], image: Path | None) -> np.ndarray:
    height, width = size
    if image is None:
        return make_clip(num_objects=3, num_frames=1, size=size, seed=0).frames[0]
    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {image}")
    return cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def _raw_message(rgb: np.ndarray, encoding: str):
    """An Image of ``rgb`` in ``encoding`` (the conversion's cost does not depend on the values)."""
    msg = rgb_to_image(rgb, make_header(1))
    height, width = rgb.shape[:2]
    if encoding == "bgr8":
        msg.data = rgb[:, :, ::-1].tobytes()
    elif encoding in ("mono16", "rgb16"):
        channels = 1 if encoding == "mono16" else 3
        msg.data = (rgb[:, :, :channels].astype("<u2") * 257).tobytes()
        msg.step = width * channels * 2
    elif encoding.startswith("yuv422"):
        msg.data = cv2.cvtColor(
            rgb, cv2.COLOR_RGB2YUV_UYVY if encoding == "yuv422" else cv2.COLOR_RGB2YUV_YUY2
        ).tobytes()
        msg.step = width * 2
    elif encoding.startswith("bayer"):
        msg.data = rgb[:, :, 1].tobytes()
        msg.step = width
    msg.encoding = encoding
    assert len(msg.data) == msg.step * height
    return msg


def _time_ms(function, frames: int) -> dict[str, float]:
    function()  # warm-up
    samples = []
    for _ in range(frames):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000.0)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p90_ms": samples[int(0.9 * (len(samples) - 1))],
        "mean_ms": statistics.fmean(samples),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.frames < 1 or not 1 <= args.jpeg_quality <= 100:
        print("vos-ros-decode-bench: error: --frames must be >= 1 and --jpeg-quality within 1-100", file=sys.stderr)
        return 1
    if args.cv_threads >= 0:
        cv2.setNumThreads(args.cv_threads)
    try:
        rgb = _frame(args.size, args.image)
    except ValueError as err:
        print(f"vos-ros-decode-bench: error: {err}", file=sys.stderr)
        return 1
    height, width = rgb.shape[:2]
    results: dict[str, dict] = {}
    for encoding in RAW_ENCODINGS:
        msg = _raw_message(rgb, encoding)
        results[f"raw {encoding}"] = _time_ms(lambda msg=msg: image_to_rgb(msg), args.frames)
    for codec in ("jpeg", "png"):
        stream = encode_rgb(rgb, codec, args.jpeg_quality)
        msg = argparse.Namespace(format=compressed_format(codec), data=stream)
        results[f"compressed {codec}"] = {
            **_time_ms(lambda msg=msg: compressed_to_rgb(msg), args.frames),
            "bytes": len(stream),
        }
    results["encode overlay jpeg"] = _time_ms(lambda: encode_rgb(rgb, "jpeg", args.jpeg_quality), args.frames)
    load = os.getloadavg()
    for name, figures in results.items():
        extra = f"  ({figures['bytes']} bytes)" if "bytes" in figures else ""
        print(f"{name:22s} median {figures['median_ms']:7.2f} ms  p90 {figures['p90_ms']:7.2f} ms{extra}")
    jpeg_extra = results["compressed jpeg"]["median_ms"] - results["raw rgb8"]["median_ms"]
    print(f"JPEG input adds {jpeg_extra:.2f} ms per {width}x{height} frame over rgb8 (median)")
    print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; OpenCV threads "
        f"{cv2.getNumThreads()}"
    )
    if args.json:
        report = {
            "size": [width, height],
            "jpeg_quality": args.jpeg_quality,
            "frames": args.frames,
            "image": str(args.image) if args.image else "synthetic (make_clip seed 0)",
            "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads(),
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": list(load),
            "jpeg_added_ms": jpeg_extra,
            "results": results,
        }
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
