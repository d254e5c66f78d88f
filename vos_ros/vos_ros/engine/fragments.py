"""Temporal consistency: drop the detached fragments of an object that appear away from it.

Objects move continuously, so a small piece of an object's mask that is far from where the
object was one frame earlier is almost always a look-alike (another dancer, a similar colour
in the background) matched by the global embedding. Dropping it here also keeps it out of the
previous-frame reference, so the error does not propagate to the next frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FragmentFilter:
    """Which fragments are stray.

    A connected component of object k is stray when it touches no pixel within ``radius``
    (in pixels of the grid it is applied to) of object k's previous region and has less than
    ``min_fraction`` of the area of k's largest component. The largest component is never
    stray, and an object absent from the previous frame (new, or reappearing) keeps all of
    its components.
    """

    radius: int = 4
    min_fraction: float = 0.3

    def __post_init__(self) -> None:
        if self.radius < 0:
            raise ValueError(f"radius must be >= 0, got {self.radius}")
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be in [0, 1], got {self.min_fraction}")

    def stray(self, labels: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """Boolean map of the pixels of ``labels`` (object ids, 0 = background) that are stray.

        ``previous`` is the previous frame's label map on the same grid.
        """
        if labels.shape != previous.shape:
            raise ValueError(f"labels {labels.shape} and previous labels {previous.shape} differ in size")
        size = 2 * self.radius + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        stray = np.zeros(labels.shape, dtype=bool)
        present = set(np.unique(labels).tolist()) & set(np.unique(previous).tolist())
        for object_id in sorted(present - {0}):
            count, components, stats, _ = cv2.connectedComponentsWithStats(
                (labels == object_id).astype(np.uint8), connectivity=8
            )
            if count <= 2:
                continue
            near = cv2.dilate((previous == object_id).astype(np.uint8), kernel).astype(bool)
            touches = np.bincount(components[near], minlength=count) > 0
            areas = stats[:, cv2.CC_STAT_AREA]
            keep = touches | (areas >= self.min_fraction * areas[1:].max())
            keep[0] = True
            stray |= ~keep[components]
        return stray
