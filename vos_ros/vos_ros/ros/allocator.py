"""Keep the memory that inference frees for the next frame instead of returning it to the system.

Each frame allocates and frees the same large activations (33 MB each at 640x480 with the full
config). glibc returns blocks above its mmap threshold (at most 32 MB by default) and a heap top
above its trim threshold to the system at every free, so the resident size (RSS) swung by some
90 MB per frame and every frame paid the page faults of touching that memory again. With both
thresholds raised, freed blocks are reused: RSS stays at the per-frame peak (which it reaches
anyway) and a frame is faster. One arena for all threads: with one per thread (glibc's default
for a multi-threaded process) each executor thread kept its own freed memory too, and the node's
RSS ended above its former per-frame peak. No effect (and None) where the C library has no
``mallopt``. Call it before the process starts threads.

Kept memory is not returned on its own, so the heap's free blocks can accumulate as the sizes of
the per-frame allocations change (objects added and removed, a new input size): ``MemoryTrimmer``
hands free pages back to the system (``malloc_trim``) at most once per period, between frames,
which bounds the resident size by the memory in use plus what one period frees.
"""

from __future__ import annotations

import ctypes
import os
import time

RETAIN_ENV = "VOS_RETAIN_FREED_MEMORY"  # "0" leaves the allocator as it is
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
RETAIN_BYTES = 1 << 30  # blocks above this size are still mapped and returned on free


def retain_freed_memory(limit: int = RETAIN_BYTES) -> str | None:
    """One malloc arena, and glibc's mmap and trim thresholds raised to ``limit`` bytes, for this process.

    Returns what was set, or None when switched off (``VOS_RETAIN_FREED_MEMORY=0``) or unsupported.
    """
    if os.environ.get(RETAIN_ENV, "1") == "0":
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, limit), (M_TRIM_THRESHOLD, limit))
    if not all(mallopt(option, value) == 1 for option, value in settings):
        return None
    return f"freed memory below {limit >> 20} MiB is kept for reuse (malloc: one arena, mmap and trim thresholds)"


class MemoryTrimmer:
    """Return the heap's free pages to the system, at most once every ``period_s`` seconds.

    ``maybe_trim()`` is called between frames; it is a no-op (False) before the period is over,
    with ``period_s`` 0, or where the C library has no ``malloc_trim``.
    """

    def __init__(self, period_s: float, clock=time.monotonic):
        self.period_s = period_s
        self._clock = clock
        self._last = clock()
        self.trims = 0
        try:
            self._trim = ctypes.CDLL(None).malloc_trim
            self._trim.argtypes, self._trim.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):
            self._trim = None

    def maybe_trim(self) -> bool:
        """Trim when the period is over; True when a trim ran."""
        if self._trim is None or self.period_s <= 0:
            return False
        now = self._clock()
        if now - self._last < self.period_s:
            return False
        self._last = now
        self._trim(0)
        self.trims += 1
        return True
