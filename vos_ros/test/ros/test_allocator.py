"""retain_freed_memory: a freed large block stays resident for reuse (in a child process); MemoryTrimmer
hands it back once per period."""

import os
import subprocess
import sys

import pytest

from vos_ros.ros.allocator import RETAIN_ENV, MemoryTrimmer

pytestmark = pytest.mark.ros  # starts a process

CHILD = """
import sys
from pathlib import Path
import numpy as np
from vos_ros.ros.allocator import retain_freed_memory

def rss_mb():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

print(retain_freed_memory() is not None)
before = rss_mb()
for _ in range(3):
    block = np.ones(100 * 2**20 // 8)  # 100 MiB, touched
    del block
print(rss_mb() - before)
if len(sys.argv) > 1:
    from vos_ros.ros.allocator import MemoryTrimmer
    trimmer = MemoryTrimmer(period_s=float(sys.argv[1]))
    trimmer._last -= 3600  # the period is over
    print(trimmer.maybe_trim(), rss_mb() - before)
"""


def child(env_value: str | None, *args: str) -> list[str]:
    env = dict(os.environ)
    env.pop(RETAIN_ENV, None)
    if env_value is not None:
        env[RETAIN_ENV] = env_value
    out = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def run(env_value: str | None) -> tuple[bool, float]:
    applied, grown = child(env_value)
    return applied == "True", float(grown)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_freed_blocks_stay_resident_unless_switched_off():
    applied, kept = run(None)
    assert applied and kept > 90, kept
    applied, kept = run("0")
    assert not applied and kept < 10, kept


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_trimmer_returns_the_kept_memory():
    applied, kept, trimmed, after = child(None, "10")
    assert applied == "True" and float(kept) > 90, kept
    assert trimmed == "True" and float(after) < 10, after


def test_trimmer_runs_at_most_once_per_period():
    now = [0.0]
    trimmer = MemoryTrimmer(period_s=10.0, clock=lambda: now[0])
    ran = []
    for t in (1.0, 9.9, 10.0, 15.0, 20.5, 30.4, 30.5):
        now[0] = t
        ran.append(trimmer.maybe_trim())
    assert ran == [False, False, True, False, True, False, True] and trimmer.trims == 3
    off = MemoryTrimmer(period_s=0.0, clock=lambda: now[0])
    now[0] = 1e6
    assert not off.maybe_trim() and off.trims == 0
