"""The generated vos_ros_interfaces messages and services have the documented fields."""

import math

import pytest
from geometry_msgs.msg import Point
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header

from vos_ros_interfaces import msg, srv


def test_tracked_object_states_are_distinct_and_default_to_tracking():
    assert msg.TrackedObject.TRACKING != msg.TrackedObject.LOST
    assert msg.TrackedObject().state == msg.TrackedObject.TRACKING


def test_tracked_object_field_types():
    assert msg.TrackedObject.get_fields_and_field_types() == {
        "id": "uint16",
        "label": "string",
        "score": "float",
        "area": "uint32",
        "bbox": "sensor_msgs/RegionOfInterest",
        "centroid_x": "float",
        "centroid_y": "float",
        "state": "uint8",
        "age": "uint32",
        "position": "geometry_msgs/Point",
    }


def test_tracked_object_holds_full_range_ids_and_nan_position():
    obj = msg.TrackedObject(id=65535, label="cup", bbox=RegionOfInterest(x_offset=3, y_offset=4, width=5, height=6))
    obj.position = Point(x=math.nan, y=math.nan, z=math.nan)
    assert obj.id == 65535
    assert obj.bbox.width == 5
    assert all(math.isnan(v) for v in (obj.position.x, obj.position.y, obj.position.z))


def test_tracked_object_array_has_header_and_objects():
    array = msg.TrackedObjectArray(
        header=Header(frame_id="camera"), objects=[msg.TrackedObject(id=1), msg.TrackedObject(id=2)]
    )
    assert array.header.frame_id == "camera"
    assert [o.id for o in array.objects] == [1, 2]


def test_set_initial_mask_request_and_response():
    request = srv.SetInitialMask.Request()
    assert isinstance(request.mask, Image)
    assert list(request.labels) == []
    assert request.append is False
    request.labels = ["cup", "book"]
    request.append = True
    assert list(request.labels) == ["cup", "book"]

    response = srv.SetInitialMask.Response(success=True, message="", object_ids=[1, 300])
    assert response.success is True
    assert list(response.object_ids) == [1, 300]
    assert srv.SetInitialMask.Response.get_fields_and_field_types()["object_ids"] == "sequence<uint16>"


def test_remove_objects_request_and_response():
    assert srv.RemoveObjects.Request.get_fields_and_field_types() == {"object_ids": "sequence<uint16>"}
    assert srv.RemoveObjects.Response.get_fields_and_field_types() == {"success": "boolean", "message": "string"}
    assert list(srv.RemoveObjects.Request(object_ids=[1, 65535]).object_ids) == [1, 65535]
    for out_of_range in (-1, 65536):
        with pytest.raises(OverflowError):
            srv.RemoveObjects.Request(object_ids=[out_of_range])
