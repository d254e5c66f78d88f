"""Pairing of messages from two topics by stamp (message_filters is not available here; no rclpy)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Lookup(Generic[T]):
    """The result of a lookup: the partner (None when none is close enough) and the offset in
    nanoseconds of the nearest buffered stamp (None when the buffer is empty)."""

    item: T | None
    offset_ns: int | None


class StampBuffer(Generic[T]):
    """The last ``capacity`` items by stamp; a lookup takes an exact match, else the nearest item
    within ``slop_ns`` (thread-safe; never blocks for longer than a lock)."""

    def __init__(self, capacity: int, slop_ns: int):
        if capacity < 1 or slop_ns < 0:
            raise ValueError(f"capacity must be >= 1 and slop >= 0, got {capacity} and {slop_ns}")
        self._items: deque[tuple[int, T]] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.slop_ns = slop_ns

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def add(self, stamp_ns: int, item: T) -> None:
        with self._lock:
            self._items.append((stamp_ns, item))

    def resize(self, capacity: int) -> None:
        """Keep at most ``capacity`` items from now on (the newest survive)."""
        with self._lock:
            self._items = deque(self._items, maxlen=capacity)

    def lookup(self, stamp_ns: int) -> Lookup[T]:
        """The partner of ``stamp_ns``: the newest item with that stamp, else the nearest within the slop."""
        with self._lock:
            best: tuple[int, T] | None = None
            for stamp, item in reversed(self._items):
                if best is None or abs(stamp - stamp_ns) < abs(best[0] - stamp_ns):
                    best = (stamp, item)
                if stamp == stamp_ns:
                    break
        if best is None:
            return Lookup(None, None)
        offset = best[0] - stamp_ns
        return Lookup(best[1] if abs(offset) <= self.slop_ns else None, offset)

    def newest(self) -> T | None:
        """The item added last (None when empty)."""
        with self._lock:
            return self._items[-1][1] if self._items else None

    def items(self) -> list[T]:
        """The buffered items, oldest first."""
        with self._lock:
            return [item for _, item in self._items]

    def stamps(self) -> list[int]:
        """The buffered stamps, oldest first."""
        with self._lock:
            return [stamp for stamp, _ in self._items]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass(frozen=True)
class TimeJump:
    """Stamps that stopped being continuous: from ``previous_ns`` to ``stamp_ns``."""

    previous_ns: int
    stamp_ns: int

    @property
    def backwards(self) -> bool:
        return self.stamp_ns < self.previous_ns

    def describe(self) -> str:
        step = (self.stamp_ns - self.previous_ns) / 1e9
        way = "backwards" if self.backwards else "forwards"
        return f"stamps jumped {way} by {abs(step):.3f} s ({self.previous_ns / 1e9:.3f} -> {self.stamp_ns / 1e9:.3f} s)"


class JumpDetector:
    """Notices stamps that go backwards, or forwards by more than ``max_forward_ns`` (0: forward
    steps never count), between consecutive calls of ``check`` (thread-safe)."""

    def __init__(self, max_forward_ns: int = 0):
        self.max_forward_ns = max_forward_ns
        self._last: int | None = None
        self._lock = threading.Lock()

    def check(self, stamp_ns: int) -> TimeJump | None:
        """The jump from the previous stamp to ``stamp_ns``, or None when time went on normally."""
        with self._lock:
            last, self._last = self._last, stamp_ns
        if last is None:
            return None
        if stamp_ns < last or (self.max_forward_ns > 0 and stamp_ns - last > self.max_forward_ns):
            return TimeJump(last, stamp_ns)
        return None

    def forget(self) -> None:
        """Start over: the next stamp is taken as it comes."""
        with self._lock:
            self._last = None
