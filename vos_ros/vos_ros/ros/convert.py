"""sensor_msgs/Image <-> numpy, for the encodings the node reads and writes (cv_bridge is not needed).

Decoding honours row padding (``step``) and ``is_bigendian`` for 16-bit data and accepts any
object with the Image fields (height, width, encoding, is_bigendian, step, data).

Colour inputs become 8-bit RGB the way cv_bridge and OpenCV make them:

- 16-bit encodings (``rgb16``, ``bgr16``, ``rgba16``, ``bgra16``, ``mono16``) keep the high byte of
  each value (``v >> 8``: 65535 -> 255, 256 -> 1, 255 -> 0);
- YUV 4:2:2 (``yuv422`` = ``uyvy``: bytes U Y0 V Y1; ``yuv422_yuy2`` = ``yuyv``: Y0 U Y1 V) is
  converted by OpenCV's ``COLOR_YUV2RGB_UYVY`` / ``COLOR_YUV2RGB_YUY2``: ITU-R BT.601, limited
  ("video") range, R = 1.164 (Y - 16) + 1.596 (V - 128), G = 1.164 (Y - 16) - 0.813 (V - 128)
  - 0.391 (U - 128), B = 1.164 (Y - 16) + 2.018 (U - 128), in 20-bit fixed point, Y below 16 taken
  as 16, results clipped to 0..255; the width must be even (two pixels share U and V);
- Bayer 8-bit mosaics (``bayer_rggb8``, ``bayer_bggr8``, ``bayer_gbrg8``, ``bayer_grbg8``, named by
  the colours of the top-left 2 x 2 cell) are demosaiced by OpenCV's bilinear ``COLOR_Bayer*2RGB``
  (missing colours are the rounded mean of the 2 or 4 nearest samples of that colour; the outermost
  rows and columns copy their inner neighbours); at least 3 x 3 pixels.
"""

from __future__ import annotations

import array

import cv2
import numpy as np
from sensor_msgs.msg import Image

# YUV 4:2:2 and Bayer encodings -> the OpenCV conversion to RGB
_YUV422 = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
_BAYER = {  # OpenCV >= 4.10 names its Bayer codes after the top-left 2 x 2 cell, as ROS does
    "bayer_rggb8": cv2.COLOR_BayerRGGB2RGB,
    "bayer_bggr8": cv2.COLOR_BayerBGGR2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGBRG2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGRBG2RGB,
}
MIN_BAYER_SIZE = 3  # OpenCV's demosaicing returns black for smaller images
COLOR_ENCODINGS = (
    ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "rgb16", "bgr16", "rgba16", "bgra16", "mono16")
    + tuple(_YUV422)
    + tuple(_BAYER)
)
MASK_ENCODINGS = ("mono8", "mono16", "8UC1", "16UC1")

# encoding -> (channels, bytes per channel)
_LAYOUT = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "rgb16": (3, 2),
    "bgr16": (3, 2),
    "rgba16": (4, 2),
    "bgra16": (4, 2),
    **dict.fromkeys(_YUV422, (2, 1)),  # two bytes per pixel: Y and, alternately, U or V
    **dict.fromkeys(_BAYER, (1, 1)),
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
    """An Image in any of :data:`COLOR_ENCODINGS` as a new H x W x 3 uint8 RGB array (see the module notes)."""
    pixels = _pixels(msg, COLOR_ENCODINGS)
    encoding = msg.encoding
    height, width = pixels.shape[:2]
    if encoding in _YUV422 and width % 2:
        raise ImageConversionError(f"{encoding} image has an odd width {width} (4:2:2 pixels come in pairs)")
    if encoding in _BAYER and min(width, height) < MIN_BAYER_SIZE:
        raise ImageConversionError(
            f"{encoding} image of {width}x{height} is too small to demosaic (at least {MIN_BAYER_SIZE}x{MIN_BAYER_SIZE})"
        )
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if encoding in _YUV422:
        return cv2.cvtColor(np.ascontiguousarray(pixels), _YUV422[encoding])
    if encoding in _BAYER:
        return cv2.cvtColor(np.ascontiguousarray(pixels[:, :, 0]), _BAYER[encoding])
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if encoding.startswith("bgr"):  # OpenCV's swap is several times faster than numpy's reversed copy
        code = cv2.COLOR_BGRA2RGB if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB
        return cv2.cvtColor(np.ascontiguousarray(pixels), code)
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
