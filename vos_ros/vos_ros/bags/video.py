"""An MP4 video of the colour images on one topic of a bag (e.g. the node's recorded ~/overlay)."""

from __future__ import annotations

from pathlib import Path

import cv2

from vos_ros.ros.convert import ImageConversionError

from .bagfiles import BagError, colour_image_rgb, read_bag, require_image_topic


def write_topic_video(bag_path: str | Path, topic: str, out_path: str | Path, fps: float) -> int:
    """Write every image of ``topic`` (Image or CompressedImage, in bag order) as an MP4 (mp4v) at ``fps``;
    returns the frame count."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    count = 0
    try:
        with read_bag(bag_path) as bag:
            topic = require_image_topic(bag, topic)
            msgtype = bag.topics[topic]
            for _, _, msg in bag.messages([topic]):
                try:
                    rgb = colour_image_rgb(msgtype, msg)
                except ImageConversionError as err:
                    raise BagError(f"image {count} on {topic} cannot be shown: {err}") from err
                if writer is None:
                    size = (rgb.shape[1], rgb.shape[0])
                    writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                    if not writer.isOpened():
                        raise BagError(f"cannot write video {out_path} (OpenCV has no mp4v encoder here)")
                elif (rgb.shape[1], rgb.shape[0]) != size:
                    raise BagError(f"image {count} on {topic} changes size to {rgb.shape[1]}x{rgb.shape[0]}")
                writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                count += 1
    finally:
        if writer is not None:
            writer.release()
    if count == 0:
        raise BagError(f"topic {topic} in bag {bag_path} holds no image to make a video of")
    return count
