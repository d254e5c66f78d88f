"""Per-stream state over time: sessions, object ids, reference memory. No ROS."""

from vos_ros.engine.errors import (
    InvalidImageError,
    InvalidMaskError,
    InvalidPromptError,
    NotInitializedError,
    TooManyObjectsError,
    UnknownObjectError,
    VosError,
)
from vos_ros.engine.result import FrameResult, ObjectResult

__all__ = [
    "FrameResult",
    "InvalidImageError",
    "InvalidMaskError",
    "InvalidPromptError",
    "NotInitializedError",
    "ObjectResult",
    "TooManyObjectsError",
    "UnknownObjectError",
    "VosError",
]
