"""End-to-end benchmark of vos_node over real DDS: a camera-like publisher at a fixed rate, the
node as a separate process, latency from each frame's stamp to its labels, the node's own timing
figures from /diagnostics, and the node's memory (RSS) over the run."""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rclpy
from ament_index_python.packages import get_package_share_directory
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from vos_ros.bags.bagfiles import header_stamp_ns
from vos_ros.bags.node_process import NodeProcess
from vos_ros.ros.convert import labels_to_image, rgb_to_image
from vos_ros.ros.domains import free_domain_id, local_ros_env
from vos_ros.ros.stats import percentiles
from vos_ros.synthetic import make_clip
from vos_ros_interfaces.srv import SetInitialMask

NODE = "/vos_bench/vos_node"
IMAGE_TOPIC = "/vos_bench/camera/image_raw"
STARTUP_TIMEOUT_S = 120.0


@dataclass
class BenchOptions:
    """What to run: input size and rate, run length, the node's config and extra --ros-args."""

    width: int = 640
    height: int = 480
    rate: float = 30.0
    duration: float = 120.0
    warmup: float = 10.0
    objects: int = 2
    config: str = "matching"
    short_side: int = 0
    device: str = "cpu"
    node_args: tuple[str, ...] = ()


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (NaN once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return math.nan


class _Probe:
    """The benchmark's ROS node: publishes frames, receives labels (stamps only) and diagnostics."""

    def __init__(self, domain_id: int):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("vos_node_bench", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.answered: dict[int, int] = {}  # stamp -> receipt time (ns, wall clock)
        self.diagnostics: list[tuple[float, dict[str, str]]] = []
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, IMAGE_TOPIC, qos_profile_sensor_data)
        self.node.create_subscription(Image, f"{NODE}/labels", self._on_labels, reliable, raw=True)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)
        self.mask_client = self.node.create_client(SetInitialMask, f"{NODE}/set_initial_mask")
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:
            pass

    def _on_labels(self, data: bytes) -> None:
        received = time.time_ns()
        with self.lock:
            self.answered.setdefault(header_stamp_ns(data), received)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(NODE):
                with self.lock:
                    self.diagnostics.append((time.monotonic(), {kv.key: kv.value for kv in status.values}))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self.thread.join(timeout=5.0)


def _wait(condition, timeout: float, process: NodeProcess) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.exit_code() is not None:
            raise RuntimeError(f"vos_node exited with code {process.exit_code()}:\n{process.log_tail(30)}")
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _initialise(probe: _Probe, process: NodeProcess, frame: Image, labels: np.ndarray) -> None:
    """Publish the first frame until the node answers it, then give its objects."""
    if not _wait(
        lambda: probe.mask_client.service_is_ready() and probe.image_pub.get_subscription_count() > 0,
        STARTUP_TIMEOUT_S,
        process,
    ):
        raise RuntimeError(f"vos_node did not come up within {STARTUP_TIMEOUT_S:.0f} s:\n{process.log_tail(30)}")
    stamp = time.time_ns()
    frame.header.stamp.sec, frame.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    for _ in range(20):
        probe.image_pub.publish(frame)
        if _wait(lambda: stamp in probe.answered, 2.0, process):
            break
    else:
        raise RuntimeError("vos_node never answered the first frame")
    request = SetInitialMask.Request(mask=labels_to_image(labels, frame.header))
    future = probe.mask_client.call_async(request)
    if not _wait(future.done, 60.0, process) or not future.result().success:
        raise RuntimeError(f"initial mask refused: {future.result().message if future.done() else 'no answer'}")


def _publish(probe: _Probe, frames: list[Image], rate: float, stop: threading.Event, published: list[int]) -> None:
    """Publish the frames in a ping-pong loop at ``rate`` Hz, stamped at publication (a live camera)."""
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    start = time.monotonic()
    count = 0
    while not stop.is_set():
        delay = start + count / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        frame = frames[order[count % len(order)]]
        stamp = time.time_ns()
        frame.header.stamp.sec, frame.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        probe.image_pub.publish(frame)
        published.append(stamp)
        count += 1


def _diagnostic_means(diagnostics: list[tuple[float, dict[str, str]]], since: float) -> dict[str, float]:
    keys = ("model_ms", "input_delay_ms", "queue_ms", "latency_ms", "input_hz", "output_hz")
    out = {}
    for key in keys:
        values = [float(values[key]) for t, values in diagnostics if t >= since and key in values]
        values = [v for v in values if math.isfinite(v)]
        out[key] = float(np.mean(values)) if values else math.nan
    return out


def run_node_bench(options: BenchOptions, progress=print) -> dict:
    """Run the benchmark; returns the figures (also suitable for JSON)."""
    clip = make_clip(num_objects=options.objects, num_frames=60, size=(options.height, options.width), seed=0)
    frames = [rgb_to_image(rgb, Header(frame_id="camera")) for rgb in clip.frames]
    share_profile = Path(get_package_share_directory("vos_ros")) / "config" / "fastdds_large_images.xml"
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(share_profile))  # for the node and this probe
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    domain = free_domain_id()
    env = local_ros_env(domain)
    profile = env["FASTRTPS_DEFAULT_PROFILES_FILE"]
    namespace, name = NODE.rsplit("/", 1)
    ros_args = [
        "-r",
        f"__node:={name}",
        "-r",
        f"__ns:={namespace}",
        "-r",
        f"image:={IMAGE_TOPIC}",
        "-p",
        f"config:={options.config}",
        "-p",
        f"short_side:={options.short_side}",
        "-p",
        f"device:={options.device}",
        *options.node_args,
    ]
    log = Path(tempfile.mkdtemp(prefix="vos_node_bench_")) / "vos_node.log"
    process = NodeProcess(ros_args, log, env=env)
    progress(f"vos_node pid {process.pid} on ROS domain {domain}, log {log}; Fast DDS profile {profile}")
    probe = _Probe(domain)
    stop = threading.Event()
    published: list[int] = []
    rss: list[tuple[float, float]] = []
    try:
        _initialise(probe, process, frames[0], clip.labels[0])
        progress(f"publishing {options.width}x{options.height} at {options.rate:g} Hz for {options.duration:g} s")
        publisher = threading.Thread(target=_publish, args=(probe, frames, options.rate, stop, published))
        started = time.monotonic()
        publisher.start()
        while (elapsed := time.monotonic() - started) < options.duration:
            rss.append((elapsed, rss_mb(process.pid)))
            if process.exit_code() is not None:
                raise RuntimeError(f"vos_node exited during the run:\n{process.log_tail(30)}")
            time.sleep(1.0)
        stop.set()
        publisher.join()
        time.sleep(2.0)  # the last answers
        with probe.lock:
            answered = dict(probe.answered)
            diagnostics = list(probe.diagnostics)
    finally:
        stop.set()
        probe.close()
        exit_code = process.stop()
    return _summarise(options, published, answered, diagnostics, rss, started, exit_code)


def _slope_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares growth of (seconds, MiB) samples in MiB per minute (NaN with fewer than 3)."""
    if len(samples) < 3:
        return math.nan
    times, values = zip(*samples)
    return float(np.polyfit(times, values, 1)[0] * 60.0)


def _summarise(options, published, answered, diagnostics, rss, started, exit_code) -> dict:
    warm = [s for s in published if s >= published[0] + options.warmup * 1e9]
    latencies = [(answered[s] - s) / 1e6 for s in warm if s in answered]
    means = _diagnostic_means(diagnostics, started + options.warmup)
    steady = [(t, m) for t, m in rss if t >= options.warmup and math.isfinite(m)]
    slope = _slope_per_min(steady)
    second_half = [(t, m) for t, m in steady if t >= (options.warmup + options.duration) / 2]
    thirds = np.array_split(np.asarray(warm), 3) if warm else []
    latency_by_third = [percentiles([(answered[s] - s) / 1e6 for s in part if s in answered])["p50"] for part in thirds]
    latency = percentiles(latencies)
    return {
        "options": asdict(options),
        "frames_published": len(published),
        "frames_answered": sum(s in answered for s in published),
        "answered_hz": len(latencies) / max(1e-9, (warm[-1] - warm[0]) / 1e9) if len(warm) > 1 else math.nan,
        "latency_ms": latency,
        "latency_p50_by_third_ms": latency_by_third,
        "model_ms": means["model_ms"],
        "input_delay_ms": means["input_delay_ms"],
        "queue_ms": means["queue_ms"],
        "publish_overhead_ms": means["latency_ms"] - means["model_ms"] - means["queue_ms"] - means["input_delay_ms"],
        "node_latency_ms": means["latency_ms"],  # stamp -> labels published, as the node measures it
        "node_latency_over_model_ms": means["latency_ms"] - means["model_ms"],
        "rss_mb": {
            "after_warmup": steady[0][1] if steady else math.nan,
            "end": steady[-1][1] if steady else math.nan,
            "max": max((m for _, m in steady), default=math.nan),
            "slope_mb_per_min": slope,
            "second_half_slope_mb_per_min": _slope_per_min(second_half),
            "median_by_third": [
                float(np.median(part)) if len(part) else math.nan
                for part in np.array_split(np.asarray([m for _, m in steady]), 3)
            ],
            "series": [(round(t, 1), round(m, 1)) for t, m in rss],
        },
        "load_average": os.getloadavg(),
        "node_exit_code": exit_code,
    }
