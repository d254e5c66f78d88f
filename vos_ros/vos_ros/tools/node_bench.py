"""End-to-end benchmark of vos_node over real DDS: a camera-like publisher at a fixed rate, the
node as a separate process, latency from each frame's stamp to its labels, the node's own timing
figures from /diagnostics, and the node's memory (RSS) over the run.

Memory is sampled every ``rss_interval`` seconds from /proc/<pid>/status and summarised per
``window`` seconds (peak, trough, swing); the peak of a window is the kernel's high-water mark
(VmHWM, reset through /proc/<pid>/clear_refs at each window start) when the kernel allows it, so
that no per-frame peak falls between two samples. ``churn`` removes and re-adds an object every
that many seconds (a soak with objects coming and going)."""

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
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from vos_ros.ros.client import ClientError, DiagnosticSample, VosClient
from vos_ros.ros.compressed import rgb_to_compressed
from vos_ros.ros.convert import labels_to_image, rgb_to_image
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.process import NodeProcess, node_ros_args
from vos_ros.ros.stamps import make_header, set_stamp
from vos_ros.ros.stats import percentiles
from vos_ros.synthetic import make_clip

NODE = "/vos_bench/vos_node"
IMAGE_TOPIC = "/vos_bench/camera/image_raw"
STARTUP_TIMEOUT_S = 120.0


@dataclass
class StreamOptions:
    """What every node benchmark runs: input size and rate, run length, the node's config and extra --ros-args."""

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
    image_transport: str = "raw"  # or "compressed": JPEG frames on <image>/compressed


def stream_frames(options: StreamOptions, rgbs, frame_id: str) -> list:
    """The clip's frames as the messages the benchmark publishes: Image, or JPEG CompressedImage."""
    convert = rgb_to_compressed if options.image_transport == "compressed" else rgb_to_image
    return [convert(rgb, Header(frame_id=frame_id)) for rgb in rgbs]  # a header each: stamped as published


def node_parameters(options: StreamOptions) -> dict:
    """The node's parameters for the stream (config, scale, device, image transport)."""
    parameters = {"config": options.config, "short_side": options.short_side, "device": options.device}
    if options.image_transport != "raw":
        parameters["image_transport"] = options.image_transport
    return parameters


def image_publisher_options(options: StreamOptions, image_topic: str) -> dict:
    """VosClient's image publisher for the stream: topic, message type and QoS."""
    if options.image_transport == "compressed":
        return {
            "image_topic": image_topic + "/compressed",
            "image_type": CompressedImage,
            "image_qos": qos_profile_sensor_data,
        }
    return {"image_topic": image_topic, "image_qos": qos_profile_sensor_data}


@dataclass
class BenchOptions(StreamOptions):
    """One camera: the stream, and the churn, memory sampling and plot of a soak."""

    churn: float = 0.0
    rss_interval: float = 0.05
    window: float = 10.0
    plot: str | None = None


def _status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return math.nan


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB (NaN once it is gone)."""
    return _status_mb(pid, "VmRSS:")


def reset_peak(pid: int) -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) of ``pid``; False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class MemorySampler:
    """RSS of a process every ``interval`` s on a thread, and its peak (VmHWM) per ``window`` s."""

    def __init__(self, pid: int, interval: float, window: float):
        self.pid, self.interval, self.window = pid, interval, window
        self.samples: list[tuple[float, float]] = []
        self.window_peaks: list[float] = []  # VmHWM over each complete window (NaN when unavailable)
        self.hwm_available = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self, started: float) -> None:
        self._started = started
        self.hwm_available = reset_peak(self.pid)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        next_window = self.window
        while not self._stop.wait(self.interval):
            elapsed = time.monotonic() - self._started
            self.samples.append((elapsed, rss_mb(self.pid)))
            if elapsed >= next_window:
                peak = _status_mb(self.pid, "VmHWM:") if self.hwm_available else math.nan
                reset_peak(self.pid)
                self.window_peaks.append(peak)
                next_window += self.window

    def windows(self) -> list[dict]:
        """Per complete window: start, peak (max of VmHWM and samples), trough and swing in MiB."""
        out = []
        for index, hwm in enumerate(self.window_peaks):
            start = index * self.window
            values = [m for t, m in self.samples if start <= t < start + self.window and math.isfinite(m)]
            if not values:
                continue
            peak = max(values + ([hwm] if math.isfinite(hwm) else []))
            trough = min(values)
            out.append(
                {
                    "start_s": start,
                    "peak_mb": round(peak, 2),
                    "trough_mb": round(trough, 2),
                    "swing_mb": round(peak - trough, 2),
                    "samples": len(values),
                }
            )
        return out


class Churn:
    """Every ``period`` s: remove the last object, or give it again (appended, on the node's newest
    frame) when it was removed."""

    def __init__(self, client: VosClient, clip, period: float, object_id: int):
        self.client, self.clip, self.period, self.object_id = client, clip, period, object_id
        self.tracked = True
        self.adds = self.removes = 0
        self.failures: list[str] = []
        self._next = period

    def tick(self, elapsed: float, published: list[tuple[int, int]]) -> None:
        if self.period <= 0 or elapsed < self._next or not published:
            return
        self._next += self.period
        try:
            if self.tracked:
                response = self.client.remove_objects([self.object_id], timeout=30.0)
                self.removes += 1
            else:
                # stamp 0: the node's newest frame, whatever it is (a frame by its stamp may have left the
                # node's recent frames when inference is slow); the mask is that of the newest published
                # frame, at most a few frames of motion away from it
                index = published[-1][1]
                mask = np.where(self.clip.labels[index] == self.object_id, self.object_id, 0).astype(np.uint16)
                header = make_header(0)
                response = self.client.set_initial_mask(labels_to_image(mask, header), append=True, timeout=30.0)
                self.adds += 1
        except ClientError as error:
            self.failures.append(f"{elapsed:.1f} s: {error}")
            return
        if response.success:
            self.tracked = not self.tracked
        else:
            self.failures.append(f"{elapsed:.1f} s: {response.message}")


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


def _publish(
    client: VosClient, frames: list[Image], rate: float, stop: threading.Event, published: list[tuple[int, int]]
) -> None:
    """Publish the frames in a ping-pong loop at ``rate`` Hz, stamped at publication (a live camera);
    ``published`` gets (stamp, clip index) of each."""
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    start = time.monotonic()
    count = 0
    while not stop.is_set():
        delay = start + count / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        index = order[count % len(order)]
        frame = frames[index]
        stamp = time.time_ns()
        set_stamp(frame.header.stamp, stamp)
        client.image_pub.publish(frame)
        published.append((stamp, index))
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
    frames = stream_frames(options, clip.frames, "camera")
    domain = free_domain_id()
    ros_args = node_ros_args(NODE, IMAGE_TOPIC, node_parameters(options), options.node_args)
    log = Path(tempfile.mkdtemp(prefix="vos_node_bench_")) / "vos_node.log"
    process = NodeProcess(ros_args, log, domain_id=domain)
    profile = process.env.get("FASTRTPS_DEFAULT_PROFILES_FILE")
    progress(f"vos_node pid {process.pid} on ROS domain {domain}, log {log}; Fast DDS profile {profile}")
    client = None
    stop = threading.Event()
    published: list[tuple[int, int]] = []
    memory = MemorySampler(process.pid, options.rss_interval, options.window)
    churn = None
    try:
        client = VosClient(NODE, domain_id=domain, process=process, **image_publisher_options(options, IMAGE_TOPIC))
        client.labels = client.subscribe(client.topic("labels"), Image, raw=True, keep=False)
        diagnostics = client.subscribe_diagnostics()
        _initialise(client, frames[0], clip.labels[0])
        churn = Churn(client, clip, options.churn, options.objects)
        progress(
            f"publishing {options.width}x{options.height} at {options.rate:g} Hz for {options.duration:g} s"
            + (f", an object removed or added every {options.churn:g} s" if options.churn > 0 else "")
        )
        publisher = threading.Thread(target=_publish, args=(client, frames, options.rate, stop, published))
        started = time.monotonic()
        memory.start(started)
        publisher.start()
        while (elapsed := time.monotonic() - started) < options.duration:
            client.check()
            churn.tick(elapsed, published)
            time.sleep(0.1)
        stop.set()
        publisher.join()
        memory.stop()
        client.sleep(2.0)  # the last answers
        answered = client.snapshot(client.labels.received_ns)
        diagnostics = client.snapshot(diagnostics)
    finally:
        stop.set()
        if memory._thread.is_alive():
            memory.stop()
        if client is not None:
            client.close()
        exit_code = process.stop()
    result = _summarise(options, [s for s, _ in published], answered, diagnostics, memory, started, exit_code)
    result["churn"] = {
        "period_s": options.churn,
        "removes": churn.removes if churn else 0,
        "adds": churn.adds if churn else 0,
        "failures": churn.failures if churn else [],
    }
    if options.plot:
        plot_run(result, options.plot)
        result["plot"] = options.plot
    return result


def _slope_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares growth of (seconds, MiB) samples in MiB per minute (NaN with fewer than 3)."""
    if len(samples) < 3:
        return math.nan
    times, values = zip(*samples)
    return float(np.polyfit(times, values, 1)[0] * 60.0)


def _latency_windows(published, answered, window: float) -> list[dict]:
    """Latency (stamp -> labels received) percentiles of the frames published in each window."""
    if not published:
        return []
    first = published[0]
    buckets: dict[int, list[float]] = {}
    for stamp in published:
        if stamp in answered:
            buckets.setdefault(int((stamp - first) / 1e9 // window), []).append((answered[stamp] - stamp) / 1e6)
    return [
        {"start_s": index * window, "answered": len(values), **percentiles(values)}
        for index, values in sorted(buckets.items())
    ]


def _peak_trend(windows: list[dict], duration: float) -> dict:
    """Least-squares slope of the window peaks over the last two thirds of the run, and the growth it implies."""
    last = [(w["start_s"], w["peak_mb"]) for w in windows if w["start_s"] >= duration / 3]
    slope = _slope_per_min(last)
    span_min = (last[-1][0] - last[0][0]) / 60.0 if len(last) > 1 else math.nan
    return {
        "peak_slope_last_two_thirds_mb_per_min": slope,
        "peak_growth_last_two_thirds_mb": slope * span_min if math.isfinite(slope) else math.nan,
        "windows_in_fit": len(last),
    }


def _summarise(options, published, answered, diagnostics, memory: MemorySampler, started, exit_code) -> dict:
    rss = memory.samples
    warm = [s for s in published if s >= published[0] + options.warmup * 1e9]
    latencies = [(answered[s] - s) / 1e6 for s in warm if s in answered]
    means = _diagnostic_means(diagnostics, started + options.warmup)
    steady = [(t, m) for t, m in rss if t >= options.warmup and math.isfinite(m)]
    slope = _slope_per_min(steady)
    second_half = [(t, m) for t, m in steady if t >= (options.warmup + options.duration) / 2]
    thirds = np.array_split(np.asarray(warm), 3) if warm else []
    latency_by_third = [percentiles([(answered[s] - s) / 1e6 for s in part if s in answered])["p50"] for part in thirds]
    latency = percentiles(latencies)
    windows = memory.windows()
    steady_windows = [w for w in windows if w["start_s"] >= options.warmup]
    swings = [w["swing_mb"] for w in steady_windows]
    latency_windows = _latency_windows(published, answered, options.window)
    edge = min(300.0, options.duration / 6)  # the first and last 5 minutes (a sixth of a shorter run)
    first = [(answered[s] - s) / 1e6 for s in warm if s in answered and s < warm[0] + edge * 1e9] if warm else []
    last = [(answered[s] - s) / 1e6 for s in warm if s in answered and s >= warm[-1] - edge * 1e9] if warm else []
    p50_first, p50_last = percentiles(first)["p50"], percentiles(last)["p50"]
    final = diagnostics[-1].values if diagnostics else {}
    counts = {key: int(final[key]) for key in ("frames_received", "frames_dropped", "bad_frames") if key in final}
    unanswered = len(published) - sum(s in answered for s in published)
    # received by the node, then neither answered nor replaced by a newer frame nor refused as bad
    lost = (
        counts["frames_received"]
        - len(answered)  # every answer, the first frame's included
        - counts["frames_dropped"]
        - counts["bad_frames"]
        if len(counts) == 3
        else None
    )
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
            "series": [(round(t, 1), round(m, 1)) for t, m in rss[:: max(1, round(1.0 / options.rss_interval))]],
        },
        "memory": {
            "sample_interval_s": options.rss_interval,
            "window_s": options.window,
            "peak_source": "VmHWM per window and samples" if memory.hwm_available else "samples",
            "windows": windows,
            "swing_mb_median": float(np.median(swings)) if swings else math.nan,
            "swing_mb_max": max(swings, default=math.nan),
            "peak_mb_max": max((w["peak_mb"] for w in steady_windows), default=math.nan),
            "trough_mb_min": min((w["trough_mb"] for w in steady_windows), default=math.nan),
            **_peak_trend(steady_windows, options.duration),
        },
        "latency_windows": latency_windows,
        "latency_edge_s": edge,
        "latency_p50_first_ms": p50_first,
        "latency_p50_last_ms": p50_last,
        "latency_p50_change_pct": 100.0 * (p50_last - p50_first) / p50_first if p50_first else math.nan,
        "frames_unanswered": unanswered,
        "frames_received_by_node": counts.get("frames_received"),
        "frames_dropped_by_node": counts.get("frames_dropped"),
        "frames_lost": lost,
        "load_average": os.getloadavg(),
        "node_exit_code": exit_code,
    }


def plot_run(result: dict, path: str) -> None:
    """A PNG of the run: RSS samples with the window peaks and troughs, and latency per window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    memory = result["memory"]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    series = result["rss_mb"]["series"]
    if series:
        top.plot([t for t, _ in series], [m for _, m in series], lw=0.6, color="0.6", label="RSS (1 s samples)")
    windows = memory["windows"]
    centres = [w["start_s"] + memory["window_s"] / 2 for w in windows]
    top.plot(centres, [w["peak_mb"] for w in windows], "v-", color="tab:red", ms=3, label="window peak")
    top.plot(centres, [w["trough_mb"] for w in windows], "^-", color="tab:blue", ms=3, label="window trough")
    top.set_ylabel("node RSS (MiB)")
    top.set_title(
        f"peak slope over the last two thirds {memory['peak_slope_last_two_thirds_mb_per_min']:+.2f} MiB/min, "
        f"median swing {memory['swing_mb_median']:.0f} MiB"
    )
    top.legend(loc="lower right", fontsize=8)
    lat = result["latency_windows"]
    bottom.plot([w["start_s"] + memory["window_s"] / 2 for w in lat], [w["p50"] for w in lat], label="p50")
    bottom.plot([w["start_s"] + memory["window_s"] / 2 for w in lat], [w["p90"] for w in lat], label="p90")
    bottom.set_ylabel("latency stamp -> labels (ms)")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
