"""Speed of one session step against the number of tracked objects (synthetic clip)."""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from vos_ros.engine.session import Session
from vos_ros.model.network import VosNetwork
from vos_ros.model.profiling import StageProfiler, profiling
from vos_ros.synthetic import make_clip


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _session(network: VosNetwork, clip, objects: int, short_side: int | None) -> Session:
    """A session tracking objects 1..``objects`` of ``clip`` from its first frame."""
    session = Session(network, max_objects=max(64, objects), short_side=short_side)
    session.set_mask(clip.frames[0], np.where(clip.labels[0] <= objects, clip.labels[0], 0))
    return session


def measure_ms_per_frame(
    network: VosNetwork,
    instances: list[int],
    size: tuple[int, int],
    frames: int = 10,
    warmup: int = 3,
    repeats: int = 3,
    seed: int = 0,
    short_side: int | None = None,
) -> dict[int, dict]:
    """Median ms per ``step`` for each object count K (one clip holding max(K) objects).

    Each K tracks objects 1..K of the same clip; the K runs are interleaved and repeated
    ``repeats`` times, so slow drifts of a shared machine hit every K alike. ``short_side`` is the
    scale frames are segmented at (default: the config's).
    """
    clip = make_clip(num_objects=max(instances), num_frames=warmup + frames + 1, size=size, seed=seed)
    times: dict[int, list[float]] = {k: [] for k in instances}
    for _ in range(repeats):
        for k in instances:
            session = _session(network, clip, k, short_side)
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


def profile_stages(
    network: VosNetwork,
    instances: list[int],
    size: tuple[int, int],
    frames: int = 10,
    warmup: int = 3,
    seed: int = 0,
    short_side: int | None = None,
) -> dict[int, dict]:
    """Mean ms per stage of a ``step`` for each object count K, with the measured frame time.

    Each entry holds ``stages_ms`` (see ``vos_ros.model.profiling.STAGES``), their sum
    ``sum_ms``, the end-to-end ``frame_ms`` measured around the same steps, and the difference.
    """
    clip = make_clip(num_objects=max(instances), num_frames=warmup + frames + 1, size=size, seed=seed)
    results = {}
    for k in instances:
        session = _session(network, clip, k, short_side)
        for t in range(1, warmup + 1):
            session.step(clip.frames[t])
        profiler = StageProfiler(network.device)
        with profiling(profiler):
            for t in range(warmup + 1, warmup + frames + 1):
                _synchronize(network.device)
                started = time.perf_counter()
                session.step(clip.frames[t])
                _synchronize(network.device)
                profiler.add_frame((time.perf_counter() - started) * 1000.0)
        results[k] = profiler.per_frame()
    return results
