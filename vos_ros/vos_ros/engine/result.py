"""What one processed frame returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ObjectResult:
    """One tracked object in one frame (pixel coordinates of the input image)."""

    id: int
    label: str
    score: float
    area: int
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    visible: bool
    age: int


@dataclass(frozen=True)
class FrameResult:
    """Per-instance label map (uint16, input size; 0 = background) and the objects in it."""

    label_map: np.ndarray
    objects: list[ObjectResult] = field(default_factory=list)
    frame_index: int = 0
    model_ms: float = 0.0

    def object(self, object_id: int) -> ObjectResult:
        """The result for one object id (KeyError if it is not tracked)."""
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        raise KeyError(object_id)
