"""Frame hand-over between the image callback and the inference worker (no rclpy).

``RecentFrames`` keeps the last few frames so that a mask can be applied to the frame it was drawn
on (each as it arrived when that is smaller than its pixels: a JPEG, a mono or Bayer image);
``NewestFrameSlot`` gives the worker always the newest frame, counting the frames that a newer one
replaced before inference reached them. ``FrameBoard`` holds one slot per
camera and hands the worker the frames of every camera that has one waiting, at once (a batch), without
ever waiting for a camera that has none.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from vos_ros.ros.stamp_pairing import StampBuffer
from vos_ros.ros.stamps import format_stamp


@dataclass(frozen=True)
class Frame:
    """One decoded input image: its message header, RGB pixels, stamp in nanoseconds, arrival time
    (monotonic), how long after its stamp it arrived (ms, on the node's clock) and its time epoch
    (the number of time jumps seen before it: frames of different epochs are never paired)."""

    header: object
    rgb: np.ndarray
    stamp_ns: int
    received: float = field(default_factory=time.monotonic)
    delay_ms: float = 0.0
    epoch: int = 0

    def nbytes(self) -> int:
        return self.rgb.nbytes


class RecentFrames:
    """The last ``capacity`` frames, looked up by exact stamp (thread-safe).

    A frame whose message is smaller than its RGB pixels (a JPEG or PNG stream, mono, Bayer, YUV and
    16-bit mono images) is kept as that message and decoded again when it is looked up: the same
    pixels (decoding is deterministic) in a fraction of the memory. A 640x480 JPEG takes some 80-90 kB
    instead of 920 kB, so 30 frames of a compressed camera hold about 2.5 MB instead of 27.6.
    """

    def __init__(self, capacity: int):
        self._frames: StampBuffer[Frame | _Packed] = StampBuffer(capacity, slop_ns=0)

    def add(self, frame: Frame, message: object = None, decode: Callable[[object], np.ndarray] | None = None) -> None:
        """Keep ``frame``; with the ``message`` it was decoded from by ``decode``, the message instead of the
        pixels when its data is smaller."""
        data = getattr(message, "data", None)
        if decode is not None and data is not None and len(data) < frame.rgb.nbytes:
            self._frames.add(frame.stamp_ns, _Packed(replace(frame, rgb=_NO_PIXELS), message, decode))
        else:
            self._frames.add(frame.stamp_ns, frame)

    def resize(self, capacity: int) -> None:
        """Keep at most ``capacity`` frames from now on (the newest ones survive)."""
        self._frames.resize(capacity)

    def find(self, stamp_ns: int) -> Frame | None:
        """The newest frame with this stamp; stamp 0 means the newest frame of all."""
        kept = self._frames.newest() if stamp_ns == 0 else self._frames.lookup(stamp_ns).item
        return kept.unpack() if isinstance(kept, _Packed) else kept

    def nbytes(self) -> int:
        """Bytes of pixels and kept message data the buffer holds."""
        return sum(kept.nbytes() for kept in self._frames.items())

    def describe(self) -> str:
        """A short account of what the buffer holds, for error messages."""
        stamps = self._frames.stamps()
        if not stamps:
            return "no frame received yet"
        return f"{len(stamps)} recent frames, stamps {format_stamp(min(stamps))} .. {format_stamp(max(stamps))} s"

    def clear(self) -> None:
        self._frames.clear()


_NO_PIXELS = np.zeros((0, 0, 3), np.uint8)


@dataclass(frozen=True)
class _Packed:
    """A kept frame without its pixels, and the message and decoder that give them back."""

    frame: Frame
    message: object
    decode: Callable[[object], np.ndarray]

    def unpack(self) -> Frame:
        return replace(self.frame, rgb=self.decode(self.message))

    def nbytes(self) -> int:
        return len(self.message.data)


class NewestFrameSlot:
    """A one-frame mailbox: ``put`` replaces a frame still waiting, ``take`` blocks for the next one."""

    def __init__(self, cond: threading.Condition | None = None):
        self._frame: Frame | None = None
        self._closed = False
        self._dropped = 0
        self._cond = cond if cond is not None else threading.Condition()  # shared by the slots of a FrameBoard

    @property
    def dropped(self) -> int:
        """How many frames were replaced by a newer one before they were taken."""
        with self._cond:
            return self._dropped

    def put(self, frame: Frame) -> bool:
        """Offer a frame; returns True when it replaced one that was still waiting."""
        with self._cond:
            replaced = self._frame is not None
            if replaced:
                self._dropped += 1
            self._frame = frame
            self._cond.notify_all()
            return replaced

    def restore(self, frame: Frame) -> None:
        """Hand back a taken frame that could not be processed yet; a newer frame waiting wins (``frame`` then
        counts as dropped)."""
        with self._cond:
            if self._closed:
                return
            if self._frame is None:
                self._frame = frame
                self._cond.notify_all()
            else:
                self._dropped += 1

    def take(self, timeout: float | None = None) -> Frame | None:
        """The waiting frame (removing it), or None after ``timeout`` seconds or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            if self._closed:
                return None
            frame, self._frame = self._frame, None
            return frame

    def take_newer(self, current: Frame, timeout: float) -> Frame:
        """The next frame if one arrives within ``timeout`` s (``current`` then counts as dropped), else ``current``."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            if self._frame is None:
                return current
            self._dropped += 1
            frame, self._frame = self._frame, None
            return frame

    def discard_older_than(self, stamp_ns: int) -> None:
        """Forget a waiting frame stamped before ``stamp_ns`` (it predates a new mask)."""
        with self._cond:
            if self._frame is not None and self._frame.stamp_ns < stamp_ns:
                self._frame = None

    def close(self) -> None:
        """Wake the consumer for good; ``take`` returns None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class FrameBoard:
    """One :class:`NewestFrameSlot` per camera, all waking one consumer (thread-safe).

    ``take_waiting`` returns the frame of every camera that has one waiting (newest-frame-wins per
    camera); a camera without a frame is simply not in the batch, so it never delays the others.
    """

    def __init__(self, cameras: int):
        self._cond = threading.Condition()
        self.slots = [NewestFrameSlot(self._cond) for _ in range(cameras)]
        self._closed = False

    def take_waiting(self, timeout: float | None = None) -> list[tuple[int, Frame]] | None:
        """(camera index, frame) of every camera with a frame waiting, removing them; blocks until there
        is at least one (an empty list after ``timeout`` s); None once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or any(s._frame is not None for s in self.slots), timeout)
            if self._closed:
                return None
            taken = []
            for index, slot in enumerate(self.slots):
                if slot._frame is not None:
                    taken.append((index, slot._frame))
                    slot._frame = None
            return taken

    def close(self) -> None:
        """Wake the consumer for good: ``take_waiting`` (and each slot's ``take``) return None from now on."""
        with self._cond:
            self._closed = True
            for slot in self.slots:
                slot._closed = True
            self._cond.notify_all()
