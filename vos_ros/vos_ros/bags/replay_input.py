"""Checking a bag before it is replayed: image topic, initial mask, ground truth (no rclpy).

Every problem a replay would otherwise hit mid-run (missing topic, wrong message type, damaged
file, mask of the wrong size or stamp) is found here, before any node is started.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vos_ros.ros.convert import ImageConversionError
from vos_ros.ros.stamps import header_stamp_ns

from .bagfiles import BagError, colour_image_rgb, read_bag, require_image_topic, require_topic
from .clip_bag import GROUND_TRUTH_TOPIC, IMAGE_TOPIC, INITIAL_MASK_TOPIC
from .scoring import decode_labels
from .typestore import COMPRESSED_IMAGE_TYPE, IMAGE_TYPE


@dataclass(frozen=True)
class ReplayInput:
    """What a replay needs to know about its bag."""

    path: Path
    image_topic: str  # the bag's topic of the frames (``<asked topic>/compressed`` when only that exists)
    compressed: bool  # the frames are sensor_msgs/CompressedImage
    stamps: tuple[int, ...]  # header stamps of the frames, in bag order
    bag_times: tuple[int, ...]  # bag times of the frames (the replay's pacing)
    width: int
    height: int
    mask_cdr: bytes  # the initial mask, serialized
    mask_stamp: int
    mask_frame: int  # index of the frame the mask belongs to
    object_ids: tuple[int, ...]
    has_ground_truth: bool


def inspect_replay_bag(
    path: str | Path,
    image_topic: str = IMAGE_TOPIC,
    mask_topic: str = INITIAL_MASK_TOPIC,
    ground_truth_topic: str = GROUND_TRUTH_TOPIC,
) -> ReplayInput:
    """Read the whole bag once and check it can be replayed; raises BagError naming the problem.

    The frames may be Image or CompressedImage; ``image_topic`` may also name the raw topic of a bag
    that holds only ``<image_topic>/compressed``."""
    path = Path(path)
    with read_bag(path) as bag:
        image_topic = require_image_topic(bag, image_topic)
        msgtype = bag.topics[image_topic]
        require_topic(bag, mask_topic, IMAGE_TYPE)
        stamps, bag_times, first = [], [], None
        for topic, timestamp, data in bag.raw([image_topic]):
            try:
                stamps.append(header_stamp_ns(data))
            except ValueError as err:
                raise BagError(f"{path}: a message on {image_topic} has no readable header: {err}") from err
            bag_times.append(timestamp)
            if first is None:
                first = bag.deserialize(topic, data)
        if first is None:
            raise BagError(f"topic {image_topic} in bag {path} holds no message")
        try:
            height, width = colour_image_rgb(msgtype, first).shape[:2]
        except ImageConversionError as err:
            raise BagError(f"first image on {image_topic} in bag {path} cannot be used: {err}") from err
        mask = next(bag.raw([mask_topic]), None)
        if mask is None:
            raise BagError(f"topic {mask_topic} in bag {path} holds no message")
        mask_cdr = mask[2]
        mask_msg = bag.deserialize(mask_topic, mask_cdr)
        mask_stamp, labels = decode_labels(bag, mask_topic, mask_msg)
        has_ground_truth = bag.topics.get(ground_truth_topic) == IMAGE_TYPE
    if labels.shape != (height, width):
        raise BagError(
            f"initial mask on {mask_topic} is {labels.shape[1]}x{labels.shape[0]} but the frames on "
            f"{image_topic} are {width}x{height}"
        )
    if mask_stamp not in stamps:
        raise BagError(f"initial mask stamp {mask_stamp} ns matches no frame on {image_topic}")
    object_ids = tuple(int(v) for v in np.unique(labels) if v != 0)
    if not object_ids:
        raise BagError(f"initial mask on {mask_topic} holds no object (all pixels are 0)")
    return ReplayInput(
        path=path,
        image_topic=image_topic,
        compressed=msgtype == COMPRESSED_IMAGE_TYPE,
        stamps=tuple(stamps),
        bag_times=tuple(bag_times),
        width=width,
        height=height,
        mask_cdr=bytes(mask_cdr),
        mask_stamp=mask_stamp,
        mask_frame=stamps.index(mask_stamp),
        object_ids=object_ids,
        has_ground_truth=has_ground_truth,
    )
