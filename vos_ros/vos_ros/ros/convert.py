"""sensor_msgs/Image <-> numpy, for the encodings the node reads and writes (cv_bridge is not needed).

Decoding honours row padding (``step``) and ``is_bigendian`` for 16-bit data and accepts any
object with the Image fields (height, width, encoding, is_bigendian, step, data).
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import Image

COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
MASK_ENCODINGS = ("mono8", "mono16", "8UC1", "16UC1")

# encoding -> (channels, bytes per channel)
_LAYOUT = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "8UC1": (1, 1),
    "mono16": (1, 2),
    "16UC1": (1, 2),
}


class ImageConversionError(ValueError):
    """An Image message cannot be converted: its size fields and data disagree."""


class UnsupportedEncodingError(ImageConversionError):
    """The Image's encoding is not one this conversion accepts."""


def _pixels(msg, allowed: tuple[str, ...]) -> np.ndarray:
    """The message's pixels as an H x W x C array (a view of the data where possible)."""
    encoding = msg.encoding
    if encoding not in allowed:
        raise UnsupportedEncodingError(f"unsupported encoding {encoding!r} (expected one of {', '.join(allowed)})")
    channels, depth = _LAYOUT[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"empty image ({width}x{height})")
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than one row of {width} {encoding} pixels ({row_bytes} bytes)"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise ImageConversionError(
            f"data holds {data.size} bytes, expected step x height = {step} x {height} = {step * height}"
        )
    rows = data.reshape(height, step)[:, :row_bytes]
    if depth == 1:
        return rows.reshape(height, width, channels)
    dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
    return np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels).astype(np.uint16)


def image_to_rgb(msg) -> np.ndarray:
    """An rgb8/bgr8/rgba8/bgra8/mono8 Image as a new H x W x 3 uint8 RGB array."""
    pixels = _pixels(msg, COLOR_ENCODINGS)
    encoding = msg.encoding
    if encoding == "mono8":
        return np.repeat(pixels, 3, axis=2)
    if encoding.startswith("bgr"):
        return np.array(pixels[:, :, 2::-1], order="C")
    return np.array(pixels[:, :, :3], order="C")


def mask_to_labels(msg) -> np.ndarray:
    """A mono8/mono16/8UC1/16UC1 label Image as a new H x W uint16 array (0 = background)."""
    return _pixels(msg, MASK_ENCODINGS)[:, :, 0].astype(np.uint16)


def _message(header, pixels: np.ndarray, encoding: str) -> Image:
    """An Image of a C-contiguous uint8 or little-endian uint16 array (array.array data: no per-byte checks)."""
    height, width = pixels.shape[:2]
    msg = Image()
    msg.header = header
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = False
    msg.step = pixels.strides[0]
    msg.data = array.array("B", pixels.tobytes())
    return msg


def labels_to_image(label_map: np.ndarray, header) -> Image:
    """A mono16 Image of an H x W integer label map, with the given header."""
    if label_map.ndim != 2:
        raise ImageConversionError(f"label map must be H x W, got shape {label_map.shape}")
    return _message(header, np.ascontiguousarray(label_map, dtype="<u2"), "mono16")


def rgb_to_image(rgb: np.ndarray, header) -> Image:
    """An rgb8 Image of an H x W x 3 uint8 array, with the given header."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageConversionError(f"expected an H x W x 3 uint8 array, got {rgb.dtype} {rgb.shape}")
    return _message(header, np.ascontiguousarray(rgb), "rgb8")
