"""Running figures for the node's diagnostics: sliding time windows and event counters (no rclpy)."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque

import numpy as np


class SlidingWindow:
    """Values observed during the last ``span`` seconds (thread-safe)."""

    def __init__(self, span: float = 5.0, clock=time.monotonic):
        self.span = span
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def add(self, value: float = 0.0) -> None:
        with self._lock:
            now = self._clock()
            self._samples.append((now, float(value)))
            self._prune(now)

    def _prune(self, now: float) -> None:
        while self._samples and self._samples[0][0] < now - self.span:
            self._samples.popleft()

    def _values(self) -> list[tuple[float, float]]:
        with self._lock:
            self._prune(self._clock())
            return list(self._samples)

    def values(self) -> list[float]:
        """The values in the window, oldest first."""
        return [v for _, v in self._values()]

    def rate(self) -> float:
        """Events per second between the first and last sample in the window (0 with fewer than 2)."""
        samples = self._values()
        if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
            return 0.0
        return (len(samples) - 1) / (samples[-1][0] - samples[0][0])

    def mean(self) -> float:
        """Mean value in the window (NaN when empty)."""
        samples = self._values()
        return sum(v for _, v in samples) / len(samples) if samples else math.nan

    def max(self) -> float:
        """Largest value in the window (NaN when empty)."""
        samples = self._values()
        return max(v for _, v in samples) if samples else math.nan


class Counters:
    """Named event totals since start (thread-safe)."""

    def __init__(self):
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]


def percentiles(values) -> dict[str, float]:
    """p50, p90, p99, max and mean of some figures (all NaN when there are none)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return dict.fromkeys(("p50", "p90", "p99", "max", "mean"), math.nan)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(values.max()),
        "mean": float(values.mean()),
    }
