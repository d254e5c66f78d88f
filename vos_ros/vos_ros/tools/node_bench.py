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
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from vos_ros.ros.client import DiagnosticSample, VosClient
from vos_ros.ros.convert import labels_to_image, rgb_to_image
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.process import NodeProcess, node_ros_args
from vos_ros.ros.stamps import set_stamp
from vos_ros.ros.stats import percentiles
from vos_ros.synthetic import make_clip

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


def _initialise(client: VosClient, frame: Image, labels: np.ndarray) -> None:
    """Publish the first frame until the node answers it, then give its objects."""
    client.wait_ready(STARTUP_TIMEOUT_S)
    stamp = time.time_ns()
    set_stamp(frame.header.stamp, stamp)
    for _ in range(20):
        client.image_pub.publish(frame)
        if client.wait(lambda: stamp in client.labels, 2.0):
            break
    else:
        raise RuntimeError("vos_node never answered the first frame")
    response = client.set_initial_mask(labels_to_image(labels, frame.header), timeout=60.0)
    if not response.success:
        raise RuntimeError(f"initial mask refused: {response.message}")


def _publish(client: VosClient, frames: list[Image], rate: float, stop: threading.Event, published: list[int]) -> None:
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
        set_stamp(frame.header.stamp, stamp)
        client.image_pub.publish(frame)
        published.append(stamp)
        count += 1


def _diagnostic_means(diagnostics: list[DiagnosticSample], since: float) -> dict[str, float]:
    keys = ("model_ms", "input_delay_ms", "queue_ms", "latency_ms", "input_hz", "output_hz")
    out = {}
    for key in keys:
        values = [float(d.values[key]) for d in diagnostics if d.received >= since and key in d.values]
        values = [v for v in values if math.isfinite(v)]
        out[key] = float(np.mean(values)) if values else math.nan
    return out


def run_node_bench(options: BenchOptions, progress=print) -> dict:
    """Run the benchmark; returns the figures (also suitable for JSON)."""
    clip = make_clip(num_objects=options.objects, num_frames=60, size=(options.height, options.width), seed=0)
    frames = [rgb_to_image(rgb, Header(frame_id="camera")) for rgb in clip.frames]
    domain = free_domain_id()
    ros_args = node_ros_args(
        NODE,
        IMAGE_TOPIC,
        {"config": options.config, "short_side": options.short_side, "device": options.device},
        options.node_args,
    )
    log = Path(tempfile.mkdtemp(prefix="vos_node_bench_")) / "vos_node.log"
    process = NodeProcess(ros_args, log, domain_id=domain)
    profile = process.env.get("FASTRTPS_DEFAULT_PROFILES_FILE")
    progress(f"vos_node pid {process.pid} on ROS domain {domain}, log {log}; Fast DDS profile {profile}")
    client = None
    stop = threading.Event()
    published: list[int] = []
    rss: list[tuple[float, float]] = []
    try:
        client = VosClient(
            NODE, domain_id=domain, process=process, image_topic=IMAGE_TOPIC, image_qos=qos_profile_sensor_data
        )
        client.labels = client.subscribe(client.topic("labels"), Image, raw=True, keep=False)
        diagnostics = client.subscribe_diagnostics()
        _initialise(client, frames[0], clip.labels[0])
        progress(f"publishing {options.width}x{options.height} at {options.rate:g} Hz for {options.duration:g} s")
        publisher = threading.Thread(target=_publish, args=(client, frames, options.rate, stop, published))
        started = time.monotonic()
        publisher.start()
        while (elapsed := time.monotonic() - started) < options.duration:
            rss.append((elapsed, rss_mb(process.pid)))
            client.check()
            time.sleep(1.0)
        stop.set()
        publisher.join()
        client.sleep(2.0)  # the last answers
        answered = client.snapshot(client.labels.received_ns)
        diagnostics = client.snapshot(diagnostics)
    finally:
        stop.set()
        if client is not None:
            client.close()
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
