"""retain_freed_memory: a freed large block stays resident for reuse (in a child process)."""

import os
import subprocess
import sys

import pytest

from vos_ros.ros.allocator import RETAIN_ENV

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
"""


def run(env_value: str | None) -> tuple[bool, float]:
    env = dict(os.environ)
    env.pop(RETAIN_ENV, None)
    if env_value is not None:
        env[RETAIN_ENV] = env_value
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    applied, grown = out.stdout.split()
    return applied == "True", float(grown)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_freed_blocks_stay_resident_unless_switched_off():
    applied, kept = run(None)
    assert applied and kept > 90, kept
    applied, kept = run("0")
    assert not applied and kept < 10, kept
