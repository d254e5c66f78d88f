"""Per-stage timing of a frame, free when switched off.

Code marks its stages with ``with stage("backbone"): ...``. While no profiler is active
(the normal case) ``stage`` returns one shared no-op context manager: no clock is read, nothing
is recorded. ``with profiling(profiler):`` activates a :class:`StageProfiler` that adds the
wall time of each stage to a running total (synchronising CUDA around each stage so that GPU
work is charged to the stage that queued it).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch

# The stages of one frame, in order (the names used by the model, the engine and the report).
# The onnxruntime backend reports "encoder graph" (backbone and heads), "segment inputs" and
# "segment graph" (matching to upsampling at stride 4) instead of the stages they replace.
STAGES = (
    "preprocessing",
    "backbone",
    "embedding heads",
    "global matching",
    "local matching",
    "vote",
    "prototypes/attention",
    "decoder",
    "upsampling",
    "post-processing",
)

_NULL = contextlib.nullcontext()
# The active profilers, innermost last (normally empty).
_active: list[StageProfiler] = []


class StageProfiler:
    """Accumulates milliseconds per stage name; ``frames`` counts the frames they cover."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.totals_ms: dict[str, float] = {}
        self.frames = 0
        self.frame_ms = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._sync()
        started = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.totals_ms[name] = self.totals_ms.get(name, 0.0) + (time.perf_counter() - started) * 1000.0

    def add_frame(self, frame_ms: float) -> None:
        """Count one profiled frame whose end-to-end time was ``frame_ms``."""
        self.frames += 1
        self.frame_ms += frame_ms

    def per_frame(self) -> dict:
        """Mean ms per frame of each stage, their sum, the measured frame time and the rest."""
        count = max(self.frames, 1)
        stages = {name: self.totals_ms.get(name, 0.0) / count for name in STAGES}
        stages.update({n: t / count for n, t in self.totals_ms.items() if n not in stages})
        total = self.frame_ms / count
        summed = sum(stages.values())
        return {"stages_ms": stages, "sum_ms": summed, "frame_ms": total, "unaccounted_ms": total - summed}


def stage(name: str) -> contextlib.AbstractContextManager:
    """Time the enclosed block as ``name`` when a profiler is active; a no-op otherwise."""
    return _active[-1].stage(name) if _active else _NULL


@contextlib.contextmanager
def profiling(profiler: StageProfiler) -> Iterator[StageProfiler]:
    """Make ``profiler`` the active one inside the block (not thread-aware: it sees every thread's stages)."""
    _active.append(profiler)
    try:
        yield profiler
    finally:
        _active.remove(profiler)
