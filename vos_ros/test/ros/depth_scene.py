"""A synthetic RGB-D scene for the depth tests: fronto-parallel textured boxes and discs at known 3D
positions in front of a textured wall, rendered by an exact pinhole camera at any resolution."""

from __future__ import annotations

import array
from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import CameraInfo, Image


@dataclass(frozen=True)
class Patch:
    """A flat object facing the camera: centre (x, y, z) in metres, half extents, disc or box."""

    id: int
    centre: tuple[float, float, float]
    half: tuple[float, float]
    disc: bool
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class Rendering:
    """One view: RGB, labels (0 = wall) and depth in metres (NaN = no reading) of the same size."""

    rgb: np.ndarray
    labels: np.ndarray
    depth: np.ndarray


WALL_Z = 3.0
PATCHES = (
    Patch(1, (-0.3, -0.1, 1.2), (0.2, 0.15), disc=False, colour=(220, 40, 40)),
    Patch(2, (0.35, 0.15, 1.6), (0.25, 0.25), disc=True, colour=(40, 200, 60)),
)


class Scene:
    """The patches in front of a wall at ``WALL_Z`` seen by a camera of ``width`` x ``height`` whose
    focal length is ``focal_ratio`` times the width, principal point at the image centre."""

    def __init__(self, width: int = 160, height: int = 120, focal_ratio: float = 0.9, patches=PATCHES):
        self.width, self.height = width, height
        self.fx = self.fy = focal_ratio * width
        self.cx, self.cy = (width - 1) / 2, (height - 1) / 2
        self.patches = patches

    def render(self, width: int | None = None, height: int | None = None) -> Rendering:
        """The scene at ``width`` x ``height`` (default: the camera's own size, same field of view)."""
        width, height = width or self.width, height or self.height
        sx, sy = width / self.width, height / self.height
        fx, fy = self.fx * sx, self.fy * sy
        cx, cy = (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5
        u, v = np.meshgrid(np.arange(width), np.arange(height))
        rx, ry = (u - cx) / fx, (v - cy) / fy  # ray direction at z = 1
        depth = np.full((height, width), WALL_Z, np.float32)
        labels = np.zeros((height, width), np.uint16)
        for patch in sorted(self.patches, key=lambda p: -p.centre[2]):  # far to near: nearer ones occlude
            x0, y0, z = patch.centre
            dx, dy = (rx * z - x0) / patch.half[0], (ry * z - y0) / patch.half[1]
            inside = dx**2 + dy**2 <= 1 if patch.disc else (np.abs(dx) <= 1) & (np.abs(dy) <= 1)
            depth[inside], labels[inside] = z, patch.id
        rng = np.random.default_rng(7)
        rgb = np.empty((height, width, 3), np.float32)
        rgb[:] = (90, 110, 160)
        for patch in self.patches:
            rgb[labels == patch.id] = patch.colour
        rgb += rng.normal(0, 12, size=rgb.shape)
        rgb[(u // 8 + v // 8) % 2 == 0] *= 0.8  # wall and objects share a texture of squares
        return Rendering(np.clip(rgb, 0, 255).astype(np.uint8), labels, depth)

    def camera_info(self, header=None, focal_scale: float = 1.0) -> CameraInfo:
        """The exact pinhole CameraInfo of the camera (``focal_scale`` 0 gives an uncalibrated one)."""
        msg = CameraInfo(width=self.width, height=self.height, distortion_model="plumb_bob", d=[0.0] * 5)
        if header is not None:
            msg.header = header
        fx, fy = self.fx * focal_scale, self.fy * focal_scale
        msg.k = [fx, 0.0, self.cx, 0.0, fy, self.cy, 0.0, 0.0, 1.0]
        msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        msg.p = [fx, 0.0, self.cx, 0.0, 0.0, fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        return msg


def depth_image(depth: np.ndarray, encoding: str, header=None, big_endian: bool = False, pad: int = 0) -> Image:
    """Depth in metres (NaN = none) as a 16UC1 (mm, 0 = none) or 32FC1 (m) Image, rows padded by ``pad`` bytes."""
    if encoding == "16UC1":
        values = np.where(np.isfinite(depth), np.round(depth * 1000), 0).astype(">u2" if big_endian else "<u2")
    else:
        values = depth.astype(">f4" if big_endian else "<f4")
    height, width = depth.shape
    rows = np.zeros((height, width * values.itemsize + pad), np.uint8)
    rows[:, : width * values.itemsize] = values.view(np.uint8).reshape(height, -1)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=big_endian, step=rows.shape[1])
    if header is not None:
        msg.header = header
    msg.data = array.array("B", rows.tobytes())
    return msg
