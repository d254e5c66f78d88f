"""Speed of one session step against the number of tracked objects (synthetic clip)."""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from vos_ros.engine.session import Session
from vos_ros.model.network import VosNetwork
from vos_ros.synthetic import make_clip


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_ms_per_frame(
    network: VosNetwork,
    instances: list[int],
    size: tuple[int, int],
    frames: int = 10,
    warmup: int = 3,
    repeats: int = 3,
    seed: int = 0,
) -> dict[int, dict]:
    """Median ms per ``step`` for each object count K (one clip holding max(K) objects).

    Each K tracks objects 1..K of the same clip; the K runs are interleaved and repeated
    ``repeats`` times, so slow drifts of a shared machine hit every K alike.
    """
    clip = make_clip(num_objects=max(instances), num_frames=warmup + frames + 1, size=size, seed=seed)
    times: dict[int, list[float]] = {k: [] for k in instances}
    for _ in range(repeats):
        for k in instances:
            session = Session(network, max_objects=max(64, k))
            first = np.where(clip.labels[0] <= k, clip.labels[0], 0)
            session.set_mask(clip.frames[0], first)
            for t in range(1, warmup + 1):
                session.step(clip.frames[t])
            for t in range(warmup + 1, warmup + frames + 1):
                _synchronize(network.device)
                started = time.perf_counter()
                session.step(clip.frames[t])
                _synchronize(network.device)
                times[k].append((time.perf_counter() - started) * 1000.0)
    return {
        k: {"median_ms": statistics.median(v), "p90_ms": float(np.percentile(v, 90)), "samples": len(v)}
        for k, v in times.items()
    }
