"""Starting vos_node as a child process and always ending it (no rclpy)."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the replay process dies, however it dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class NodeProcess:
    """vos_node in its own process group, its output in a log file; ``stop`` ends it within bounded time."""

    def __init__(self, ros_args: list[str], log_path: Path, env: dict[str, str] | None = None):
        executable = shutil.which("vos_node")
        command = [executable] if executable else [sys.executable, "-m", "vos_ros.ros.node"]
        self.command = command + ["--ros-args", *ros_args]
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl(), safe after fork
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def exit_code(self) -> int | None:
        """The exit code, or None while the node runs."""
        return self._process.poll()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the node printed."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self._process.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGINT, then SIGTERM, then SIGKILL to the node's process group; returns its exit code."""
        for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self._process.poll() is not None:
                break
            self._signal(sig)
            try:
                self._process.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        # children the node left behind in its group go too
        self._signal(signal.SIGKILL)
        self._log.close()
        return self._process.wait(timeout=5.0)
