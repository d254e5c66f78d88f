"""TrackedObjectArray and overlay messages built from a frame result."""

import math

import numpy as np
import pytest
from std_msgs.msg import Header

from vos_ros.engine.result import ObjectResult
from vos_ros.ros.messages import overlay_image, tracked_object_array
from vos_ros_interfaces.msg import TrackedObject


def test_tracked_object_array_sorts_by_id_and_maps_every_field():
    header = Header(frame_id="cam")
    objects = [
        ObjectResult(
            id=7, label="cup", score=0.8, area=12, bbox=(3, 4, 5, 6), centroid=(5.5, 6.5), visible=True, age=9
        ),
        ObjectResult(
            id=2, label="", score=0.1, area=0, bbox=(0, 0, 0, 0), centroid=(math.nan, math.nan), visible=False, age=1
        ),
    ]
    msg = tracked_object_array(objects, header)
    assert msg.header == header
    lost, cup = msg.objects
    assert (cup.id, cup.label, cup.area, cup.age, cup.state) == (7, "cup", 12, 9, TrackedObject.TRACKING)
    assert cup.score == pytest.approx(0.8)
    assert (cup.bbox.x_offset, cup.bbox.y_offset, cup.bbox.width, cup.bbox.height) == (3, 4, 5, 6)
    assert (cup.centroid_x, cup.centroid_y) == (5.5, 6.5)
    assert lost.id == 2 and lost.state == TrackedObject.LOST and math.isnan(lost.centroid_x)
    for obj in msg.objects:
        assert math.isnan(obj.position.x) and math.isnan(obj.position.y) and math.isnan(obj.position.z)


def test_overlay_image_tints_objects_only():
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    labels = np.zeros((6, 8), np.uint16)
    labels[1:3, 2:5] = 1
    labels[4, 6] = 300  # ids beyond the palette still get a colour
    header = Header(frame_id="cam")
    msg = overlay_image(rgb, labels, 0.5, header)
    assert (msg.encoding, msg.height, msg.width, msg.header) == ("rgb8", 6, 8, header)
    out = np.frombuffer(bytes(msg.data), np.uint8).reshape(6, 8, 3)
    np.testing.assert_array_equal(out[labels == 0], rgb[labels == 0])
    assert np.any(out[labels != 0] != rgb[labels != 0], axis=1).all()
    assert bytes(overlay_image(rgb, labels, 0.0, header).data) == rgb.tobytes(), "alpha 0 shows the image"
