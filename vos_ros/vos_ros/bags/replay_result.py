"""What a replay measured: answered frames, throughput, latency, the node's model time and the
score, as report lines and as JSON-ready data."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vos_ros.ros.client import DIAGNOSTICS_TOPIC
from vos_ros.ros.stats import percentiles

from .bagfiles import read_bag
from .scoring import BagScore, score_lines, score_report


@dataclass
class ReplayResult:
    """What one replay measured."""

    frames: int  # frames after the mask frame, each to be answered with labels
    answered: int
    latencies_ms: list[float]  # publish -> labels received, per answered frame (wall clock)
    duration_s: float  # first tracked frame published -> last labels received
    recorded: Path | None
    score: BagScore | None
    node_log: Path | None
    model_ms: float  # median of the model times the node reported on /diagnostics (NaN if none)

    @property
    def dropped(self) -> int:
        return self.frames - self.answered

    @property
    def fps(self) -> float:
        return self.answered / self.duration_s if self.duration_s > 0 else math.nan

    def latency_percentiles(self) -> dict[str, float]:
        """p50, p90, p99, max and mean of the end-to-end latency in ms (NaN when nothing was answered)."""
        return percentiles(self.latencies_ms)

    def report(self) -> dict:
        """The figures as JSON-ready data (scores as fractions, like vos-ros-eval's JSON)."""
        report = {
            "frames": self.frames,
            "answered": self.answered,
            "dropped": self.dropped,
            "fps": _finite(self.fps),
            "ms_per_frame": _finite(1000 / self.fps if self.fps > 0 else math.nan),
            "latency_ms": {key: _finite(value) for key, value in self.latency_percentiles().items()},
            "model_ms": _finite(self.model_ms),
            "recorded": str(self.recorded) if self.recorded else None,
            "node_log": str(self.node_log) if self.node_log else None,
        }
        if self.score is not None:
            report["scores"] = score_report(self.score)
        return report

    def lines(self) -> list[str]:
        """The figures as human-readable lines, the last one ``J&F <x> J <x> F <x>`` when scored."""
        fps = self.fps
        lines = [
            f"frames {self.frames} answered {self.answered} dropped {self.dropped}",
            f"throughput {fps:.2f} FPS ({1000 / fps if fps > 0 else math.nan:.1f} ms/frame)",
            "end-to-end latency ms: "
            + " ".join(f"{key} {value:.1f}" for key, value in self.latency_percentiles().items()),
            "model time reported by the node on /diagnostics: "
            + (f"{self.model_ms:.1f} ms/frame" if math.isfinite(self.model_ms) else "none received"),
        ]
        if self.recorded:
            lines.append(f"recorded {self.recorded}")
        if self.node_log:
            lines.append(f"node log {self.node_log}")
        if self.score is not None:
            lines += score_lines(self.score)
        return lines


def _finite(value: float) -> float | None:
    """The value, or None where JSON would need a NaN."""
    return value if math.isfinite(value) else None


def _finite(value: float) -> float | None:
    """The value, or None where JSON would need a NaN."""
    return value if math.isfinite(value) else None


def reported_model_ms(recorded: Path, node: str) -> float:
    """Median of the ``model_ms`` values in the node's recorded /diagnostics (NaN when there are none)."""
    prefix = f"{node.rstrip('/')}:"
    values = []
    with read_bag(recorded) as bag:
        for _, _, msg in bag.messages([DIAGNOSTICS_TOPIC]):
            for status in msg.status:
                if status.name.startswith(prefix):
                    values += [float(kv.value) for kv in status.values if kv.key == "model_ms"]
    values = [v for v in values if math.isfinite(v)]
    return float(np.median(values)) if values else math.nan
