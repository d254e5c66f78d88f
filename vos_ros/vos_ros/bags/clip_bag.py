"""Bags made from annotated clips: frames, ground-truth label images and the first frame's mask.

Layout of such a bag (the replay and the bag evaluation read it):

- ``/camera/image_raw``: sensor_msgs/Image rgb8, one per frame, stamped at the clip's frame rate, or
  instead ``/camera/image_raw/compressed``: sensor_msgs/CompressedImage JPEG or PNG (format
  ``rgb8; jpeg compressed bgr8`` / ``rgb8; png compressed bgr8``, as image_transport writes them);
- ``/ground_truth/labels``: sensor_msgs/Image mono16 label images (0 = background), stamped like
  their frame;
- ``/initial_mask``: the first frame's label image, stamped like the first frame.

The bag time of every message equals its header stamp.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vos_ros.ros.compressed import CODECS, DEFAULT_JPEG_QUALITY, compressed_format, encode_rgb
from vos_ros.ros.convert import ImageConversionError

from .bagfiles import BagError, compressed_image_message, image_message, write_bag

IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_IMAGE_TOPIC = f"{IMAGE_TOPIC}/compressed"
GROUND_TRUTH_TOPIC = "/ground_truth/labels"
INITIAL_MASK_TOPIC = "/initial_mask"
DEFAULT_START_NS = 1_000_000_000  # a non-zero first stamp: a zero stamp means "newest frame" to the node


def write_clip_bag(
    path: str | Path,
    frames: Iterable[tuple[np.ndarray, np.ndarray]],
    fps: float = 30.0,
    frame_id: str = "camera",
    storage: str = "mcap",
    start_ns: int = DEFAULT_START_NS,
    compressed: str | None = None,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> int:
    """Write (RGB frame, label map) pairs as a clip bag; returns the number of frames.

    The first frame's label map is also written as the initial mask. ``compressed`` (``jpeg`` or
    ``png``) writes the frames as CompressedImage on :data:`COMPRESSED_IMAGE_TOPIC` instead.
    """
    if not fps > 0:
        raise BagError(f"fps must be positive, got {fps}")
    if compressed is not None and compressed not in CODECS:
        raise BagError(f"compressed must be one of {', '.join(CODECS)}, got {compressed!r}")
    if not 1 <= jpeg_quality <= 100:
        raise BagError(f"jpeg_quality must be within 1-100, got {jpeg_quality}")
    count = 0
    with write_bag(path, storage) as bag:
        for index, (rgb, labels) in enumerate(frames):
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise BagError(f"frame {index}: expected an H x W x 3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
            stamp = start_ns + round(index * 1e9 / fps)
            if compressed is None:
                bag.write(IMAGE_TOPIC, stamp, image_message(bag.typestore, stamp, frame_id, rgb, "rgb8"))
            else:
                try:
                    stream = encode_rgb(rgb, compressed, jpeg_quality)
                except ImageConversionError as err:
                    raise BagError(f"frame {index}: {err}") from err
                image = compressed_image_message(bag.typestore, stamp, frame_id, stream, compressed_format(compressed))
                bag.write(COMPRESSED_IMAGE_TOPIC, stamp, image)
            count += 1
            if labels.shape != rgb.shape[:2]:
                raise BagError(f"frame {index}: label map {labels.shape} differs from frame size {rgb.shape[:2]}")
            label_msg = image_message(bag.typestore, stamp, frame_id, labels.astype(np.uint16), "mono16")
            if index == 0:
                bag.write(INITIAL_MASK_TOPIC, stamp, label_msg)
            bag.write(GROUND_TRUTH_TOPIC, stamp, label_msg)
        if count == 0:
            raise BagError("no frames to write")
    return count
