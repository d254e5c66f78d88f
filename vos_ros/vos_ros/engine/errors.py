"""Exceptions raised by the session API for bad input or bad call order."""


class VosError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidImageError(VosError, ValueError):
    """The image is not an HxWx3 uint8 array (or is empty)."""


class InvalidMaskError(VosError, ValueError):
    """The label map is malformed: wrong shape/dtype, size differs from the image, or empty."""


class TooManyObjectsError(VosError, ValueError):
    """An object id is out of range, or the number of tracked objects would exceed the limit."""


class NotInitializedError(VosError, RuntimeError):
    """step() was called before any object was given with set_mask()."""


class UnknownObjectError(VosError, KeyError):
    """An object id that the session does not track."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown object"


class InvalidPromptError(VosError, ValueError):
    """A box or click prompt is malformed: empty or inverted box, outside the image, a point naming no box."""
