"""Engine results -> ROS messages: the tracked-object array and the RViz overlay image (raw and JPEG)."""

from __future__ import annotations

import math

import numpy as np
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest

from vos_ros.engine.result import ObjectResult
from vos_ros.overlay import overlay_rgb
from vos_ros.ros.compressed import rgb_to_compressed
from vos_ros.ros.convert import rgb_to_image
from vos_ros_interfaces.msg import TrackedObject, TrackedObjectArray


def tracked_object(result: ObjectResult) -> TrackedObject:
    """One object of a frame result as a TrackedObject (position NaN: no depth yet)."""
    msg = TrackedObject()
    msg.id = result.id
    msg.label = result.label
    msg.score = float(result.score)
    msg.area = result.area
    x, y, width, height = result.bbox
    msg.bbox = RegionOfInterest(x_offset=x, y_offset=y, width=width, height=height, do_rectify=False)
    msg.centroid_x, msg.centroid_y = (float(c) for c in result.centroid)
    msg.state = TrackedObject.TRACKING if result.visible else TrackedObject.LOST
    msg.age = result.age
    msg.position.x = msg.position.y = msg.position.z = math.nan
    return msg


def tracked_object_array(objects: list[ObjectResult], header) -> TrackedObjectArray:
    """All objects of one frame, sorted by id, with the input image's header."""
    return TrackedObjectArray(header=header, objects=[tracked_object(o) for o in sorted(objects, key=lambda o: o.id)])


def overlay_image(rgb: np.ndarray, label_map: np.ndarray, alpha: float, header) -> Image:
    """The rgb8 overlay of the objects on the input image, with the input image's header."""
    return rgb_to_image(overlay_rgb(rgb, label_map, alpha), header)


def overlay_messages(
    rgb: np.ndarray, label_map: np.ndarray, alpha: float, header, raw: bool, jpeg_quality: int | None
) -> tuple[Image | None, CompressedImage | None]:
    """The overlay as an rgb8 Image (when ``raw``) and as a JPEG CompressedImage (when ``jpeg_quality``
    is given), blended once for both, with the input image's header."""
    overlay = overlay_rgb(rgb, label_map, alpha)
    image = rgb_to_image(overlay, header) if raw else None
    jpeg = rgb_to_compressed(overlay, header, "jpeg", jpeg_quality) if jpeg_quality is not None else None
    return image, jpeg
