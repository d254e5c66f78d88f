"""Starting vos_node as a child process and always ending it (no rclpy).

One place for what every tool that starts a node needs: the ``--ros-args`` for a node name,
image topic and parameters, the environment (a private ROS domain if asked, localhost
discovery, the Fast DDS profile for camera-sized frames unless the caller chose one), and a
process that is always ended, with its output in a log file.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from vos_ros.ros.domains import local_ros_env

PR_SET_PDEATHSIG = 1
PACKAGE = "vos_ros"
FASTDDS_PROFILE = "config/fastdds_large_images.xml"


def package_share_file(relative: str, package: str = PACKAGE) -> Path | None:
    """A file installed under share/<package>/ of some ament prefix, or None."""
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidate = Path(prefix) / "share" / package / relative
        if candidate.is_file():
            return candidate
    return None


def use_local_dds(env: dict[str, str] | None = None) -> dict[str, str]:
    """Defaults for DDS on one machine, set in ``env`` (default: this process's environment) where
    the caller has not chosen: localhost discovery and the Fast DDS profile whose shared-memory
    segment holds a camera frame (without it best-effort 640x480 frames are mostly lost)."""
    env = os.environ if env is None else env
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    profile = package_share_file(FASTDDS_PROFILE)
    if profile is not None:
        env.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(profile))
    return env


def split_node_name(node: str) -> tuple[str, str]:
    """('/ns', 'name') of a fully qualified node name."""
    node = "/" + node.strip("/")
    namespace, _, name = node.rpartition("/")
    return namespace or "/", name


def node_ros_args(
    node: str = "/vos_node",
    image_topic: str | None = None,
    parameters: dict[str, object] | None = None,
    extra: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """The ``--ros-args`` (without that word) that name the node, remap its image topic and set
    parameters; ``extra`` (the user's own arguments) comes last and wins."""
    namespace, name = split_node_name(node)
    args = ["-r", f"__node:={name}", "-r", f"__ns:={namespace}"]
    if image_topic is not None:
        args += ["-r", f"image:={image_topic}"]
    for key, value in (parameters or {}).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["-p", f"{key}:={text}"]
    return [*args, *extra]


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent process dies, however it dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class NodeExited(RuntimeError):
    """The node process ended while it was still needed."""


class NodeProcess:
    """vos_node in its own process group, its output in a log file; ``stop`` ends it within bounded time.

    ``domain_id`` puts it on a private ROS domain (see :mod:`vos_ros.ros.domains`); ``env`` replaces
    the environment it inherits. Either way the local DDS defaults of :func:`use_local_dds` apply.
    """

    def __init__(
        self,
        ros_args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        domain_id: int | None = None,
    ):
        env = dict(os.environ if env is None else env)
        if domain_id is not None:
            env = local_ros_env(domain_id, env)
        use_local_dds(env)
        self.env = env
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

    def check_alive(self) -> None:
        """Raise :class:`NodeExited` (with the end of its log) if the node is no longer running."""
        code = self.exit_code()
        if code is not None:
            raise NodeExited(
                f"vos_node exited with code {code}; its last output ({self.log_path}):\n{self.log_tail(40)}"
            )

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
