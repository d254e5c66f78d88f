"""3D results -> ROS messages: the objects' PointCloud2 and RViz text markers (no rclpy)."""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from visualization_msgs.msg import Marker, MarkerArray

CLOUD_DTYPE = np.dtype(
    {"names": ["x", "y", "z", "id"], "formats": ["<f4", "<f4", "<f4", "<u2"], "offsets": [0, 4, 8, 12], "itemsize": 16}
)
CLOUD_FIELDS = (
    PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
    PointField(name="id", offset=12, datatype=PointField.UINT16, count=1),
)
MARKER_NAMESPACE = "vos_objects"
MARKER_TEXT_HEIGHT = 0.1  # metres


def objects_cloud(points: np.ndarray, ids: np.ndarray, header) -> PointCloud2:
    """An unorganised little-endian PointCloud2 (x, y, z float32; id uint16; 16-byte points) of
    N x 3 points and their N object ids, with the given header; all points are finite."""
    packed = np.zeros(len(points), CLOUD_DTYPE)
    packed["x"], packed["y"], packed["z"] = points[:, 0], points[:, 1], points[:, 2]
    packed["id"] = ids
    msg = PointCloud2()
    msg.header = header
    msg.height = 1
    msg.width = len(points)
    msg.fields = list(CLOUD_FIELDS)
    msg.is_bigendian = False
    msg.point_step = CLOUD_DTYPE.itemsize
    msg.row_step = CLOUD_DTYPE.itemsize * len(points)
    msg.data = array.array("B", packed.tobytes())
    msg.is_dense = True
    return msg


def _text(object_id: int, label: str) -> str:
    return f"{object_id}: {label}" if label else str(object_id)


class ObjectMarkers:
    """Text markers at the objects' 3D positions; remembers which are shown so that an object
    whose position is unknown (lost, no depth) or that is gone gets a DELETE."""

    def __init__(self):
        self._shown: set[int] = set()

    def update(self, objects: list[tuple[int, str, tuple[float, float, float] | None]], header) -> MarkerArray:
        """Markers for one frame's (id, label, position or None); empty when nothing changed or is shown."""
        markers = []
        placed = set()
        for object_id, label, position in objects:
            if position is None:
                continue
            marker = Marker(header=header, ns=MARKER_NAMESPACE, id=object_id, type=Marker.TEXT_VIEW_FACING)
            marker.action = Marker.ADD
            marker.pose.position.x, marker.pose.position.y, marker.pose.position.z = (float(c) for c in position)
            marker.pose.orientation.w = 1.0
            marker.scale.z = MARKER_TEXT_HEIGHT
            marker.color.r = marker.color.g = marker.color.b = marker.color.a = 1.0
            marker.text = _text(object_id, label)
            markers.append(marker)
            placed.add(object_id)
        for object_id in sorted(self._shown - placed):
            markers.append(Marker(header=header, ns=MARKER_NAMESPACE, id=object_id, action=Marker.DELETE))
        self._shown = placed
        return MarkerArray(markers=markers)


def set_positions(array_msg, positions: dict[int, tuple[float, float, float] | None]) -> None:
    """Fill TrackedObject.position of the objects with a known position (the others keep NaN)."""
    for obj in array_msg.objects:
        position = positions.get(obj.id)
        if position is not None:
            obj.position.x, obj.position.y, obj.position.z = (float(c) for c in position)
