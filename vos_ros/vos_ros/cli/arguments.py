"""Argument types shared by the command-line tools."""

from __future__ import annotations

import argparse

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
    """``--backend`` (torch or onnxruntime) and ``--graph-dir`` (where onnxruntime keeps its graphs)."""
    parser.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="inference backend (default torch); onnxruntime runs graphs exported from the weights, on the CPU",
    )
    parser.add_argument(
        "--graph-dir", help="onnxruntime: keep the exported graphs in this folder and reuse them (default: in memory)"
    )
