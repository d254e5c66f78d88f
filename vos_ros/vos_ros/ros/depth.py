"""Registered depth images and pinhole intrinsics -> 3D object positions and object points (numpy only).

Conventions: depth registered to the colour image per REP 118 (16UC1 in millimetres or 32FC1 in
metres; 0 and NaN mean no reading); points in the colour camera's optical frame (x right, y down,
z forward, metres); pixel (0, 0) is the centre of the top-left pixel, as in CameraInfo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

DEPTH_ENCODINGS = ("16UC1", "32FC1")
ASPECT_TOLERANCE = 0.01  # relative difference of the x and y scale factors still taken as one aspect ratio

# encoding -> (little-endian dtype, metres per unit)
_DEPTH_LAYOUT = {"16UC1": (np.dtype("<u2"), 0.001), "32FC1": (np.dtype("<f4"), 1.0)}


class DepthError(ValueError):
    """A depth image or CameraInfo cannot be used; the message names the problem."""


def depth_to_metres(msg) -> np.ndarray:
    """A 16UC1 (mm) or 32FC1 (m) Image as a new H x W float32 array in metres, NaN where there is no reading.

    Honours row padding (``step``) and ``is_bigendian``; accepts any object with the Image fields.
    """
    layout = _DEPTH_LAYOUT.get(msg.encoding)
    if layout is None:
        raise DepthError(f"unsupported depth encoding {msg.encoding!r} (expected {' or '.join(DEPTH_ENCODINGS)})")
    dtype, scale = layout
    if msg.is_bigendian:
        dtype = dtype.newbyteorder(">")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise DepthError(f"empty depth image ({width}x{height})")
    row_bytes = width * dtype.itemsize
    if step < row_bytes:
        raise DepthError(
            f"depth step {step} is smaller than one row of {width} {msg.encoding} pixels ({row_bytes} bytes)"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise DepthError(f"depth data holds {data.size} bytes, expected step x height = {step * height}")
    rows = np.ascontiguousarray(data.reshape(height, step)[:, :row_bytes])
    metres = rows.view(dtype).reshape(height, width).astype(np.float32)
    if scale != 1.0:
        metres *= np.float32(scale)
    metres[~(metres > 0) | ~np.isfinite(metres)] = np.nan
    return metres


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics (pixels) of an image of ``width`` x ``height``; size 0 x 0 means not stated.

    ``distortion`` holds the coefficients of ``distortion_model`` (a CameraInfo's D, for raw
    images); empty or all zero means none (rectified images, or a camera without distortion).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int = 0
    height: int = 0
    distortion: tuple[float, ...] = ()
    distortion_model: str = ""

    @property
    def distorted(self) -> bool:
        return any(self.distortion)

    def normalised(self, us: np.ndarray, vs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates -> normalised image coordinates (x/z, y/z) of their rays, undistorted."""
        us, vs = np.asarray(us, np.float64), np.asarray(vs, np.float64)
        if not self.distorted or us.size == 0:
            return (us - self.cx) / self.fx, (vs - self.cy) / self.fy
        k = np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])
        d = np.array(self.distortion, np.float64)
        pixels = np.stack([us.ravel(), vs.ravel()], axis=-1).reshape(-1, 1, 2)
        if self.distortion_model == "equidistant":
            rays = cv2.fisheye.undistortPoints(pixels, k, d[:4])
        else:  # plumb_bob, rational_polynomial (checked when the CameraInfo was taken)
            rays = cv2.undistortPoints(pixels, k, d)
        rays = rays.reshape(-1, 2)
        return rays[:, 0].reshape(us.shape), rays[:, 1].reshape(vs.shape)

    def scaled_to(self, width: int, height: int) -> Intrinsics:
        """The intrinsics of the same camera resampled to ``width`` x ``height`` (same field of view)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=width,
            height=height,
            distortion=self.distortion,
            distortion_model=self.distortion_model,
        )


DISTORTION_MODELS = {"plumb_bob": (4, 5, 8, 12, 14), "rational_polynomial": (4, 5, 8, 12, 14), "equidistant": (4,)}


def intrinsics_from_camera_info(msg, geometry: str = "raw") -> Intrinsics:
    """The intrinsics of a CameraInfo for back-projecting pixels of the images it describes.

    ``geometry`` ``raw`` (images as the camera sends them): K and the distortion D, so that
    pixels are undistorted before back-projection (plain K when D is zero). ``rectified`` (the
    ``image_rect`` topics of image_proc): the projection P, no distortion. Refuses a zero or
    invalid focal length and a distortion model this cannot undo.
    """
    if geometry == "rectified":
        p = [float(v) for v in msg.p]
        fx, fy, cx, cy = p[0], p[5], p[2], p[6]
        name, distortion, model = "P", (), ""
    elif geometry == "raw":
        k = [float(v) for v in msg.k]
        fx, fy, cx, cy = k[0], k[4], k[2], k[5]
        name, distortion, model = "K", tuple(float(v) for v in msg.d), msg.distortion_model
    else:
        raise ValueError(f"unknown camera geometry {geometry!r}")
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)):
        raise DepthError(f"CameraInfo {name} has non-finite entries (fx={fx}, fy={fy}, cx={cx}, cy={cy})")
    if fx <= 0 or fy <= 0:
        raise DepthError(f"CameraInfo {name} has no usable focal length (fx={fx}, fy={fy}): is the camera calibrated?")
    if any(distortion):
        if not all(math.isfinite(v) for v in distortion):
            raise DepthError(f"CameraInfo D has non-finite entries {distortion}")
        if len(distortion) not in DISTORTION_MODELS.get(model, ()):
            raise DepthError(
                f"cannot undo distortion model {model!r} with {len(distortion)} coefficients (supported: "
                f"{', '.join(DISTORTION_MODELS)}); give rectified images with camera_geometry:=rectified"
            )
    if not any(distortion):
        distortion, model = (), ""
    return Intrinsics(fx, fy, cx, cy, int(msg.width), int(msg.height), distortion, model)


def _same_aspect(size_a: tuple[int, int], size_b: tuple[int, int]) -> bool:
    sx, sy = size_b[0] / size_a[0], size_b[1] / size_a[1]
    return abs(sx - sy) <= ASPECT_TOLERANCE * max(sx, sy)


def depth_intrinsics(intrinsics: Intrinsics, colour_size: tuple[int, int], depth_size: tuple[int, int]) -> Intrinsics:
    """The colour camera's intrinsics at the depth image's resolution (sizes are width, height).

    Registered depth shares the colour camera's field of view, so a smaller or larger depth image
    is the colour image resampled: the intrinsics scale by the size ratio. CameraInfo without a
    size is taken to describe the colour image. Refuses sizes of different aspect ratios.
    """
    own = (intrinsics.width, intrinsics.height) if intrinsics.width > 0 and intrinsics.height > 0 else colour_size
    for name, size in (("colour image", colour_size), ("CameraInfo", own)):
        if not _same_aspect(size, depth_size):
            raise DepthError(
                f"depth image is {depth_size[0]}x{depth_size[1]} but the {name} is {size[0]}x{size[1]}: "
                "aspect ratios differ, so the depth is not registered to the colour image"
            )
    at_own = Intrinsics(
        intrinsics.fx,
        intrinsics.fy,
        intrinsics.cx,
        intrinsics.cy,
        *own,
        distortion=intrinsics.distortion,
        distortion_model=intrinsics.distortion_model,
    )
    return at_own if own == depth_size else at_own.scaled_to(*depth_size)


def labels_at(label_map: np.ndarray, width: int, height: int) -> np.ndarray:
    """A colour-resolution label map resampled to ``width`` x ``height`` (nearest pixel centre)."""
    src_height, src_width = label_map.shape
    if (src_width, src_height) == (width, height):
        return label_map
    if not _same_aspect((src_width, src_height), (width, height)):
        raise DepthError(
            f"depth image is {width}x{height} but the colour image is {src_width}x{src_height}: aspect ratios differ"
        )
    rows = np.minimum(((np.arange(height) + 0.5) * src_height / height).astype(np.intp), src_height - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * src_width / width).astype(np.intp), src_width - 1)
    return label_map[rows[:, None], cols[None, :]]


@dataclass(frozen=True)
class ObjectGeometry:
    """3D results of one frame: each object's position (None when unknown) and its points.

    ``points`` is N x 3 float32 (x, y, z in metres) and ``point_ids`` the N object ids (uint16).
    """

    positions: dict[int, tuple[float, float, float] | None]
    points: np.ndarray
    point_ids: np.ndarray


def eroded_labels(labels: np.ndarray, ids, erosion: int) -> np.ndarray:
    """The label map with each object's mask eroded by ``erosion`` pixels (a square kernel)."""
    if erosion <= 0:
        return np.where(np.isin(labels, list(ids)), labels, 0).astype(labels.dtype)
    kernel = np.ones((2 * erosion + 1, 2 * erosion + 1), np.uint8)
    out = np.zeros_like(labels)
    for object_id in ids:
        mask = cv2.erode((labels == object_id).view(np.uint8), kernel)
        out[mask.astype(bool)] = object_id
    return out


def locate_objects(
    depth: np.ndarray,
    labels: np.ndarray,
    intrinsics: Intrinsics,
    ids,
    erosion: int,
    min_valid: int,
    cloud_stride: int | None,
) -> ObjectGeometry:
    """Positions and points of the objects ``ids`` from depth (metres) and labels of the same size.

    An object's mask is eroded by ``erosion`` pixels so that background depth at its silhouette
    does not leak in. Its position is the back-projection, at the median of the valid depths left
    under the mask, of the mean pixel of those depths: the middle of its visible surface. With
    fewer than ``min_valid`` valid depths the position is None. The points are the valid pixels of
    the eroded masks on a grid of ``cloud_stride`` pixels, back-projected (none when None).
    """
    if depth.shape != labels.shape:
        raise DepthError(f"depth {depth.shape} and labels {labels.shape} differ in size")
    eroded = eroded_labels(labels, ids, erosion)
    valid = np.isfinite(depth)
    positions: dict[int, tuple[float, float, float] | None] = {}
    for object_id in ids:
        vs, us = np.nonzero((eroded == object_id) & valid)
        if len(vs) < max(1, min_valid):
            positions[object_id] = None
            continue
        z = float(np.median(depth[vs, us]))
        x, y = intrinsics.normalised(np.array([us.mean()]), np.array([vs.mean()]))
        positions[object_id] = (float(x[0]) * z, float(y[0]) * z, z)
    if cloud_stride is None:
        return ObjectGeometry(positions, np.zeros((0, 3), np.float32), np.zeros(0, np.uint16))
    grid = eroded[::cloud_stride, ::cloud_stride]
    vs, us = np.nonzero((grid != 0) & valid[::cloud_stride, ::cloud_stride])
    z = depth[::cloud_stride, ::cloud_stride][vs, us]
    us, vs = us * cloud_stride, vs * cloud_stride
    points = np.empty((len(z), 3), np.float32)
    x, y = intrinsics.normalised(us, vs)
    points[:, 0] = x * z
    points[:, 1] = y * z
    points[:, 2] = z
    return ObjectGeometry(positions, points, eroded[vs, us].astype(np.uint16))
