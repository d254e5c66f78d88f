"""The node's depth inputs and the 3D results of its frames (thread-safe; no rclpy).

Depth images are decoded when they arrive and kept by stamp; the inference worker pairs each
processed frame with one of them afterwards, without waiting, so depth never delays labels.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from vos_ros.ros.depth import (
    DepthError,
    Intrinsics,
    ObjectGeometry,
    depth_intrinsics,
    depth_to_metres,
    intrinsics_from_camera_info,
    labels_at,
    locate_objects,
)
from vos_ros.ros.stamp_pairing import JumpDetector, StampBuffer
from vos_ros.ros.stamps import format_stamp

DEPTH_BUFFER_SIZE = 30  # depth images kept for pairing: about one second of a 30 Hz camera


@dataclass(frozen=True)
class Located:
    """The 3D result of one frame: geometry (None when there is none) and why not, when that is a problem."""

    geometry: ObjectGeometry | None
    problem: str | None = None


class DepthFusion:
    """Registered depth and the colour CameraInfo -> positions and points of a frame's objects."""

    def __init__(self, slop_s: float, capacity: int = DEPTH_BUFFER_SIZE, max_forward_jump_s: float = 0.0):
        self._depths: StampBuffer[np.ndarray] = StampBuffer(capacity, round(slop_s * 1e9))
        self._jumps = JumpDetector(round(max_forward_jump_s * 1e9))
        self._lock = threading.Lock()
        self._intrinsics: Intrinsics | None = None
        self._info_problem = "no CameraInfo received yet"

    @property
    def intrinsics(self) -> Intrinsics | None:
        """The intrinsics of the last accepted CameraInfo (None before one, or after a refused one)."""
        with self._lock:
            return self._intrinsics

    def add_depth(self, msg, stamp_ns: int) -> None:
        """Decode and keep a depth image; raises DepthError (naming the problem) for one that cannot be used."""
        depth = depth_to_metres(msg)
        if self._jumps.check(stamp_ns) is not None:
            self._depths.clear()  # depth stamps jumped: nothing from before may pair with frames after
        self._depths.add(stamp_ns, depth)

    def clear(self) -> None:
        """Forget every buffered depth image (the image stamps jumped)."""
        self._depths.clear()
        self._jumps.forget()

    def set_camera_info(self, msg, geometry: str = "raw") -> None:
        """Take the intrinsics of a CameraInfo (``geometry``: raw, K and D; rectified, P: see
        intrinsics_from_camera_info); a refused one (DepthError) leaves none until a good one arrives."""
        try:
            intrinsics = intrinsics_from_camera_info(msg, geometry)
        except DepthError as error:
            with self._lock:
                self._intrinsics, self._info_problem = None, f"refused CameraInfo: {error}"
            raise
        with self._lock:
            self._intrinsics, self._info_problem = intrinsics, ""

    def locate(
        self,
        stamp_ns: int,
        label_map: np.ndarray,
        ids: list[int],
        *,
        slop_s: float,
        erosion: int,
        min_valid: int,
        cloud_stride: int | None,
    ) -> Located:
        """Positions (and points, when ``cloud_stride`` is given) of ``ids`` in the frame ``stamp_ns``.

        No geometry and no problem while no depth image has arrived (depth is optional).
        """
        self._depths.slop_ns = round(slop_s * 1e9)
        found = self._depths.lookup(stamp_ns)
        if found.offset_ns is None:
            return Located(None)
        if found.item is None:
            return Located(
                None,
                f"no depth image within depth_slop={slop_s:g} s of the frame stamped {format_stamp(stamp_ns)} s "
                f"(the nearest is {found.offset_ns / 1e9:+.3f} s away)",
            )
        with self._lock:
            intrinsics, info_problem = self._intrinsics, self._info_problem
        if intrinsics is None:
            return Located(None, f"{info_problem}: 3D positions need the colour camera's intrinsics")
        depth = found.item
        height, width = label_map.shape
        try:
            at_depth = depth_intrinsics(intrinsics, (width, height), (depth.shape[1], depth.shape[0]))
            labels = labels_at(label_map, depth.shape[1], depth.shape[0])
        except DepthError as error:
            return Located(None, str(error))
        return Located(locate_objects(depth, labels, at_depth, ids, erosion, min_valid, cloud_stride))
