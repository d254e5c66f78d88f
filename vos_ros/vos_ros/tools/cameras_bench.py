"""Several cameras over real DDS: one vos_node serving N cameras (``cameras`` parameter, one network,
batched frames) against N separate single-camera vos_node processes.

Each camera is a publisher at a fixed rate with its own synthetic clip (seed = camera index); every
figure is taken after the warm-up: per camera the answered frames per second and the latency from
each frame's stamp to its labels arriving here; per node the model time per batch (``batch_ms``,
or ``model_ms`` for one camera) and batch size from /diagnostics; and the memory of the node
process(es): the kernel's peak (VmHWM over the whole run, start-up included) and the mean RSS after
the warm-up, summed over the processes of a run.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sensor_msgs.msg import Image

from vos_ros.ros.client import VosClient
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.process import NodeProcess, node_ros_args
from vos_ros.ros.stats import percentiles
from vos_ros.synthetic import make_clip
from vos_ros.tools.node_bench import (
    StreamOptions,
    _initialise,
    _publish,
    _status_mb,
    image_publisher_options,
    node_parameters,
    rss_mb,
    stream_frames,
)

NAMESPACE = "/vos_bench"
RSS_INTERVAL_S = 0.2


@dataclass
class CamerasBenchOptions(StreamOptions):
    """Which runs (camera counts; ``separate`` adds N single-camera processes for each N > 1) and their input."""

    duration: float = 20.0  # shorter runs than one camera's: every count (and its separate processes) runs in turn
    warmup: float = 5.0
    counts: tuple[int, ...] = (1, 2, 4)
    separate: bool = False
    one_node_threads: int = 0  # torch_threads of the one node (0: its default, as each separate process)


def camera_names(count: int) -> list[str]:
    return [f"cam{i}" for i in range(count)]


def _diagnostic_mean(samples, key: str, since: float) -> float:
    values = [float(s.values[key]) for s in samples if s.received >= since and key in s.values]
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def run_cameras(options: CamerasBenchOptions, count: int, separate: bool, progress=print) -> dict:
    """One run: ``count`` cameras in one node (or in ``count`` separate nodes); returns its figures."""
    names = camera_names(count)
    domain = free_domain_id()
    parameters = node_parameters(options)
    scratch = Path(tempfile.mkdtemp(prefix="vos_cameras_bench_"))
    processes: list[NodeProcess] = []
    clients: list[VosClient] = []
    stop = threading.Event()
    published: dict[str, list[tuple[int, int]]] = {name: [] for name in names}
    rss: list[tuple[float, float]] = []
    try:
        if separate:
            for index, name in enumerate(names):
                node = f"{NAMESPACE}/vos_node_{index}"
                args = node_ros_args(node, f"{NAMESPACE}/{name}/image", parameters, options.node_args)
                processes.append(NodeProcess(args, scratch / f"vos_node_{index}.log", domain_id=domain))
            endpoints = [(f"{NAMESPACE}/vos_node_{i}", None) for i in range(count)]
        else:
            node = f"{NAMESPACE}/vos_node"
            cameras = {"cameras": "[" + ",".join(names) + "]"}
            if options.one_node_threads:
                cameras["torch_threads"] = options.one_node_threads
            args = node_ros_args(node, None, {**parameters, **cameras}, options.node_args)
            processes.append(NodeProcess(args, scratch / "vos_node.log", domain_id=domain))
            endpoints = [(node, name) for name in names]
        kind = f"{count} separate processes" if separate else f"one node, cameras {names}"
        progress(f"{kind}: pids {[p.pid for p in processes]} on ROS domain {domain}, logs in {scratch}")
        clips = [make_clip(options.objects, 60, (options.height, options.width), seed=i) for i in range(count)]
        diagnostics = []
        for index, (name, (node, camera)) in enumerate(zip(names, endpoints)):
            client = VosClient(
                node,
                domain_id=domain,
                process=processes[index if separate else 0],
                camera=camera,
                **image_publisher_options(options, f"{NAMESPACE}/{name}/image"),
            )
            clients.append(client)
            client.labels = client.subscribe(client.topic("labels"), Image, raw=True, keep=False)
            if separate or index == 0:
                diagnostics.append(client.subscribe_diagnostics())
        frames = [stream_frames(options, clip.frames, name) for name, clip in zip(names, clips)]
        for client, camera_frames, clip in zip(clients, frames, clips):
            _initialise(client, camera_frames[0], clip.labels[0])
        progress(
            f"publishing {count} x {options.width}x{options.height} at {options.rate:g} Hz for {options.duration:g} s"
        )
        publishers = [
            threading.Thread(target=_publish, args=(client, camera_frames, options.rate, stop, published[name]))
            for client, camera_frames, name in zip(clients, frames, names)
        ]
        started = time.monotonic()
        for publisher in publishers:
            publisher.start()
        while (elapsed := time.monotonic() - started) < options.duration:
            for client in clients:
                client.check()
            if elapsed >= options.warmup:
                rss.append((elapsed, sum(rss_mb(p.pid) for p in processes)))
            time.sleep(RSS_INTERVAL_S)
        stop.set()
        for publisher in publishers:
            publisher.join()
        clients[0].sleep(2.0)  # the last answers
        peak_mb = sum(_status_mb(p.pid, "VmHWM:") for p in processes)
        answered = {name: client.snapshot(client.labels.received_ns) for name, client in zip(names, clients)}
        diagnostics = [clients[0].snapshot(samples) for samples in diagnostics]
    finally:
        stop.set()
        for client in clients:
            client.close()
        exit_codes = [process.stop() for process in processes]
    since = started + options.warmup
    per_camera = {}
    for name in names:
        stamps = [s for s, _ in published[name]]
        warm = [s for s in stamps if s >= stamps[0] + options.warmup * 1e9] if stamps else []
        latencies = [(answered[name][s] - s) / 1e6 for s in warm if s in answered[name]]
        span = (warm[-1] - warm[0]) / 1e9 if len(warm) > 1 else math.nan
        per_camera[name] = {
            "published": len(stamps),
            "answered": sum(s in answered[name] for s in stamps),
            "answered_hz": len(latencies) / span if span and math.isfinite(span) else math.nan,
            "latency_ms": percentiles(latencies),
        }
    batch_key = "model_ms" if separate or count == 1 else "batch_ms"
    return {
        "cameras": count,
        "separate_processes": separate,
        "processes": len(processes),
        "per_camera": per_camera,
        "answered_hz_total": float(sum(c["answered_hz"] for c in per_camera.values())),
        "latency_p50_ms_mean": float(np.mean([c["latency_ms"]["p50"] for c in per_camera.values()])),
        "model_ms_per_batch": float(np.mean([_diagnostic_mean(d, batch_key, since) for d in diagnostics])),
        "batch_size": _diagnostic_mean(diagnostics[0], "batch_size", since) if batch_key == "batch_ms" else 1.0,
        "peak_rss_mb": peak_mb,
        "mean_rss_mb_after_warmup": float(np.mean([m for _, m in rss])) if rss else math.nan,
        "node_exit_codes": exit_codes,
        "load_average": os.getloadavg(),
    }


def run_cameras_bench(options: CamerasBenchOptions, progress=print) -> dict:
    """Every run of ``options`` in turn, and the ratios the targets are about."""
    runs = []
    for count in options.counts:
        runs.append(run_cameras(options, count, separate=False, progress=progress))
        if options.separate and count > 1:
            runs.append(run_cameras(options, count, separate=True, progress=progress))
    one = next((r for r in runs if r["cameras"] == 1), None)
    ratios = {}
    for run in runs:
        count = run["cameras"]
        if run["separate_processes"] or count == 1:
            continue
        if one is not None:
            ratios[f"peak_rss_{count}_over_1"] = run["peak_rss_mb"] / one["peak_rss_mb"]
            ratios[f"mean_rss_{count}_over_1"] = run["mean_rss_mb_after_warmup"] / one["mean_rss_mb_after_warmup"]
        apart = next((r for r in runs if r["cameras"] == count and r["separate_processes"]), None)
        if apart is not None:
            ratios[f"answered_hz_{count}_one_node_over_{count}_processes"] = (
                run["answered_hz_total"] / apart["answered_hz_total"]
            )
            ratios[f"peak_rss_{count}_one_node_over_{count}_processes"] = run["peak_rss_mb"] / apart["peak_rss_mb"]
    return {"options": asdict(options), "runs": runs, "ratios": ratios, "cpu_count": os.cpu_count()}
