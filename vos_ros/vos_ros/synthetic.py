"""Synthetic multi-object clips with exact ground truth (for tests, benchmarks and the demo).

Textured objects (ellipses and rectangles with their own noise texture) move over a
textured background; the label map gives every object's exact pixels (later objects
occlude earlier ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Clip:
    """Frames (T x H x W x 3 uint8 RGB) and label maps (T x H x W uint16, 0 = background)."""

    frames: np.ndarray
    labels: np.ndarray

    @property
    def object_ids(self) -> list[int]:
        """The object ids present in the first frame."""
        return [int(v) for v in np.unique(self.labels[0]) if v != 0]


def _texture(rng: np.random.Generator, height: int, width: int, base: np.ndarray) -> np.ndarray:
    """Smooth colour noise around a base colour."""
    coarse = rng.normal(0.0, 45.0, size=(max(2, height // 8), max(2, width // 8), 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0.0, 12.0, size=(height, width, 3)).astype(np.float32)
    return np.clip(base[None, None, :] + smooth + fine, 0, 255).astype(np.uint8)


def make_clip(
    num_objects: int = 2,
    num_frames: int = 20,
    size: tuple[int, int] = (240, 320),
    seed: int = 0,
    speed: float = 2.0,
) -> Clip:
    """A clip of ``num_objects`` textured shapes (ids 1..K) drifting over a textured background.

    ``size`` is (height, width). Objects bounce off the image border, so they stay visible.
    """
    height, width = size
    rng = np.random.default_rng(seed)
    background = _texture(rng, height, width, rng.uniform(60, 200, size=3).astype(np.float32))
    radius = max(6, int(min(height, width) / (3.2 + num_objects**0.5 * 1.6)))
    objects = []
    for index in range(num_objects):
        half = np.array([rng.uniform(0.7, 1.0) * radius, rng.uniform(0.7, 1.0) * radius])
        box = int(2 * half.max()) + 2
        texture = _texture(rng, box, box, rng.uniform(0, 255, size=3).astype(np.float32))
        objects.append(
            {
                "id": index + 1,
                "half": half,
                "ellipse": bool(index % 2 == 0),
                "texture": texture,
                "pos": np.array([rng.uniform(half[1], width - half[1]), rng.uniform(half[0], height - half[0])]),
                "vel": rng.normal(0.0, 1.0, size=2) * speed + np.sign(rng.normal(size=2)) * speed * 0.5,
            }
        )
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    labels = np.zeros((num_frames, height, width), dtype=np.uint16)
    for t in range(num_frames):
        frame = background.copy()
        label = labels[t]
        for obj in objects:
            shape = np.zeros((height, width), dtype=np.uint8)
            cx, cy = obj["pos"]
            hy, hx = obj["half"]
            if obj["ellipse"]:
                cv2.ellipse(shape, (round(cx), round(cy)), (int(hx), int(hy)), 0, 0, 360, 1, -1)
            else:
                cv2.rectangle(shape, (int(cx - hx), int(cy - hy)), (int(cx + hx), int(cy + hy)), 1, -1)
            ys, xs = np.nonzero(shape)
            tex = obj["texture"]
            ty = np.clip(ys - int(cy - hy), 0, tex.shape[0] - 1)
            tx = np.clip(xs - int(cx - hx), 0, tex.shape[1] - 1)
            frame[ys, xs] = tex[ty, tx]
            label[ys, xs] = obj["id"]
            obj["pos"] = obj["pos"] + obj["vel"]
            for axis, limit, extent in ((0, width, hx), (1, height, hy)):
                if obj["pos"][axis] < extent or obj["pos"][axis] > limit - extent:
                    obj["vel"][axis] *= -1
                    obj["pos"][axis] = np.clip(obj["pos"][axis], extent, limit - extent)
        frames[t] = frame
    return Clip(frames=frames, labels=labels)
