"""Argument types shared by the command-line tools."""

from __future__ import annotations

import argparse

from vos_ros.model.backends import BACKENDS
from vos_ros.model.configs import MIN_SHORT_SIDE

MIN_SIDE = 16


def image_size(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' (e.g. 854x480) -> (height, width)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from None
    if width < MIN_SIDE or height < MIN_SIDE:
        raise argparse.ArgumentTypeError(f"size {text} is too small ({MIN_SIDE}x{MIN_SIDE} at least)")
    return height, width


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend`` (one of BACKENDS) and ``--graph-dir`` (where the graph backends keep their ONNX graphs)."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="inference backend (default torch); onnxruntime and openvino run graphs exported from the weights, "
        "on the CPU",
    )
    parser.add_argument(
        "--graph-dir",
        help="onnxruntime and openvino: keep the exported graphs in this folder and reuse them (default: in memory)",
    )


def _integer_at_least(text: str, minimum: int, shown: str) -> int:
    """``text`` as an integer >= ``minimum``; else an argparse error that shows the input as ``shown``."""
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {shown}")
    return value


def short_side(text: str) -> int:
    """A scale to segment at: the short side in pixels, at least MIN_SHORT_SIDE."""
    return _integer_at_least(text, MIN_SHORT_SIDE, text)


def add_short_side_argument(parser: argparse.ArgumentParser) -> None:
    """``--short-side``: the scale frames are segmented at (default: the config's, as the node's parameter)."""
    parser.add_argument(
        "--short-side",
        type=short_side,
        help="resize frames so that their short side has this many pixels (default: the config's)",
    )


def refine_iterations(text: str) -> int:
    """A GrabCut iteration count: an integer >= 0."""
    return _integer_at_least(text, 0, repr(text))


def add_refine_argument(parser: argparse.ArgumentParser, default: int) -> None:
    """``--refine-iterations``: colour refinement of the prompt head's masks (0: the head's masks)."""
    parser.add_argument(
        "--refine-iterations",
        type=refine_iterations,
        default=default,
        help=f"GrabCut iterations of the colour refinement of each prompt mask (default {default}; "
        "0: the prompt head's masks as they are)",
    )


def box_prompt(text: str) -> tuple[tuple[float, float, float, float], str]:
    """'x0,y0,x1,y1[:label]' (pixels) -> ((x0, y0, x1, y1), label)."""
    coords, _, label = text.partition(":")
    try:
        x0, y0, x1, y1 = (float(part) for part in coords.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected x0,y0,x1,y1[:label], e.g. 10,20,200,240:cup, got {text!r}"
        ) from None
    return (x0, y0, x1, y1), label


def point_prompt(text: str) -> tuple[float, float, bool]:
    """'x,y[,+|-]' (pixels; + positive, the default, - negative) -> (x, y, positive)."""
    parts = text.split(",")
    try:
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("+", "-")):
            raise ValueError
        return float(parts[0]), float(parts[1]), len(parts) == 2 or parts[2] == "+"
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y[,+|-], e.g. 120,80 or 40,60,-, got {text!r}") from None
