"""Peak working memory of each stage of one frame: VmHWM over the stage minus VmRSS before it.

    python scripts/stage_memory.py [CONFIG] [--size HEIGHTxWIDTH] [--objects K]

Steps a session over a synthetic clip (two frames to warm up), then measures the third frame's
stages (the ``stage`` names of vos_ros.model.profiling). glibc is told to return freed memory at
once (one arena, every block over 64 kB mapped on its own, no trim threshold), so RSS follows what
is alive; the script re-runs itself with that environment. Needs /proc (Linux).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

ENVIRONMENT = {"MALLOC_ARENA_MAX": "1", "MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_MMAP_THRESHOLD_": "65536"}


def status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} in /proc/self/status")


class PeakPerStage:
    """A stage profiler for ``vos_ros.model.profiling.profiling``: resets the RSS high-water mark at each stage."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    @contextlib.contextmanager
    def stage(self, name: str):
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        before = status_mb("VmRSS")
        yield
        self.rows.append((name, before, status_mb("VmHWM") - before))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="full")
    parser.add_argument("--size", default="480x640", help="frame HEIGHTxWIDTH (default 480x640)")
    parser.add_argument("--objects", type=int, default=2)
    args = parser.parse_args()
    if any(os.environ.get(k) != v for k, v in ENVIRONMENT.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **ENVIRONMENT})

    import torch

    from vos_ros.engine.session import Session
    from vos_ros.model import build_network
    from vos_ros.model.profiling import profiling
    from vos_ros.synthetic import make_clip

    torch.set_num_threads(1)
    height, width = (int(v) for v in args.size.lower().split("x"))
    clip = make_clip(num_objects=args.objects, num_frames=4, size=(height, width), seed=0)
    session = Session(build_network(args.config))
    session.set_mask(clip.frames[0], clip.labels[0])
    session.step(clip.frames[1])
    session.step(clip.frames[2])
    with profiling(PeakPerStage()) as profiler:
        session.step(clip.frames[3])
    print(f"config {args.config}, {width}x{height}, {args.objects} objects: peak MB above RSS per stage")
    peaks: dict[str, float] = {}
    for name, _, peak in profiler.rows:
        peaks[name] = max(peaks.get(name, 0.0), peak)
    for name, peak in peaks.items():
        print(f"{name:22s} {peak:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
