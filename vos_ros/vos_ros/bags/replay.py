"""Replaying a clip bag through vos_node over DDS and recording what the node publishes.

The only module of :mod:`vos_ros.bags` that imports rclpy. The bag's serialized images are
published unchanged (original stamps), preceded by a ``/clock`` message at the frame's stamp
(the node runs with ``use_sim_time``); the initial mask goes to ``~/set_initial_mask`` stamped
like its frame. At rate 0 the next frame leaves only when the node's labels for the previous
one arrived, so no frame is dropped. Every wait is bounded; a node started here is always ended.
"""

from __future__ import annotations

import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

from vos_ros.ros.stats import percentiles
from vos_ros_interfaces.srv import SetInitialMask

from .bagfiles import BagError, header_stamp_ns, read_bag, write_bag
from .clip_bag import GROUND_TRUTH_TOPIC, IMAGE_TOPIC, INITIAL_MASK_TOPIC
from .node_process import NodeProcess
from .replay_input import ReplayInput, inspect_replay_bag
from .scoring import BagScore, score_bags, score_lines, score_report
from .typestore import DIAGNOSTICS_TYPE, IMAGE_TYPE, TRACKED_OBJECTS_TYPE

DIAGNOSTICS_TOPIC = "/diagnostics"
CLOCK_TOPIC = "/clock"
MAX_CONSECUTIVE_MISSES = 3  # at rate 0: frames in a row without labels before the replay gives up


class ReplayError(RuntimeError):
    """The replay could not run to its end (node did not start, refused the mask, died, ...)."""


@dataclass
class ReplayOptions:
    """How to replay a bag (see ``vos-ros-replay --help``)."""

    bag: Path
    image_topic: str = IMAGE_TOPIC
    mask_topic: str = INITIAL_MASK_TOPIC
    ground_truth_topic: str = GROUND_TRUTH_TOPIC
    rate: float = 0.0
    record: Path | None = None
    storage: str = "mcap"
    record_overlay: bool = False
    node: str = "/vos_node"
    launch: bool = True
    node_args: list[str] = field(default_factory=list)
    startup_timeout: float = 120.0
    frame_timeout: float = 30.0
    log_path: Path | None = None


@dataclass
class ReplayResult:
    """What one replay measured."""

    frames: int  # frames after the mask frame, each to be answered with labels
    answered: int
    latencies_ms: list[float]  # publish -> labels received, per answered frame (wall clock)
    duration_s: float  # first tracked frame published -> last labels received
    recorded: Path | None
    score: BagScore | None
    node_log: Path | None
    model_ms: float  # median of the model times the node reported on /diagnostics (NaN if none)

    @property
    def dropped(self) -> int:
        return self.frames - self.answered

    @property
    def fps(self) -> float:
        return self.answered / self.duration_s if self.duration_s > 0 else math.nan

    def latency_percentiles(self) -> dict[str, float]:
        """p50, p90, p99, max and mean of the end-to-end latency in ms (NaN when nothing was answered)."""
        return percentiles(self.latencies_ms)

    def report(self) -> dict:
        """The figures as JSON-ready data (scores as fractions, like vos-ros-eval's JSON)."""
        report = {
            "frames": self.frames,
            "answered": self.answered,
            "dropped": self.dropped,
            "fps": _finite(self.fps),
            "ms_per_frame": _finite(1000 / self.fps if self.fps > 0 else math.nan),
            "latency_ms": {key: _finite(value) for key, value in self.latency_percentiles().items()},
            "model_ms": _finite(self.model_ms),
            "recorded": str(self.recorded) if self.recorded else None,
            "node_log": str(self.node_log) if self.node_log else None,
        }
        if self.score is not None:
            report["scores"] = score_report(self.score)
        return report

    def lines(self) -> list[str]:
        """The figures as human-readable lines, the last one ``J&F <x> J <x> F <x>`` when scored."""
        fps = self.fps
        lines = [
            f"frames {self.frames} answered {self.answered} dropped {self.dropped}",
            f"throughput {fps:.2f} FPS ({1000 / fps if fps > 0 else math.nan:.1f} ms/frame)",
            "end-to-end latency ms: "
            + " ".join(f"{key} {value:.1f}" for key, value in self.latency_percentiles().items()),
            "model time reported by the node on /diagnostics: "
            + (f"{self.model_ms:.1f} ms/frame" if math.isfinite(self.model_ms) else "none received"),
        ]
        if self.recorded:
            lines.append(f"recorded {self.recorded}")
        if self.node_log:
            lines.append(f"node log {self.node_log}")
        if self.score is not None:
            lines += score_lines(self.score)
        return lines


def _finite(value: float) -> float | None:
    """The value, or None where JSON would need a NaN."""
    return value if math.isfinite(value) else None


def node_topic(node: str, name: str) -> str:
    """The topic or service ``~/name`` of a node given by its fully qualified name."""
    return f"{node.rstrip('/')}/{name}"


def package_share_file(package: str, relative: str) -> Path | None:
    """A file installed under share/<package>/ of some ament prefix, or None."""
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidate = Path(prefix) / "share" / package / relative
        if candidate.is_file():
            return candidate
    return None


def prepare_environment() -> None:
    """Defaults for a replay on one machine (the caller's own values win): localhost discovery and
    the Fast DDS profile with a shared-memory segment large enough for camera frames."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    profile = package_share_file("vos_ros", "config/fastdds_large_images.xml")
    if profile is not None:
        os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(profile))


def _split_node_name(node: str) -> tuple[str, str]:
    """('/ns', 'name') of a fully qualified node name."""
    node = "/" + node.strip("/")
    namespace, _, name = node.rpartition("/")
    return namespace or "/", name


def node_ros_args(options: ReplayOptions) -> list[str]:
    """The --ros-args a node started by the replay gets (the user's --node-args come last and win)."""
    namespace, name = _split_node_name(options.node)
    return [
        "-r",
        f"__node:={name}",
        "-r",
        f"__ns:={namespace}",
        "-r",
        f"image:={options.image_topic}",
        "-p",
        "use_sim_time:=true",
        *options.node_args,
    ]


def _matching_qos(endpoints) -> QoSProfile:
    """A subscription QoS compatible with all the given publishers and losing nothing it can keep."""
    best_effort = any(e.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for e in endpoints)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=100,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
    )


def _wait(condition: Callable[[], bool], timeout: float, check: Callable[[], None], step: float = 0.05) -> bool:
    """Poll ``condition`` until true or ``timeout`` s passed; ``check`` runs meanwhile (and may raise)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        check()
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


class _Session:
    """The replay's own ROS node: publishers, recording subscriptions and the answered-frame log.

    Subscription callbacks run on an executor thread and only queue what they receive; the bag
    is written on the calling thread (``check``), as the sqlite3 storage requires.
    """

    def __init__(self, options: ReplayOptions, bag_input: ReplayInput, writer, alive: Callable[[], None]):
        self.options = options
        self.input = bag_input
        self.writer = writer
        self.alive = alive
        self.sim_time_ns = 0
        self.published: dict[int, float] = {}
        self.answered: dict[int, float] = {}
        self.subscriptions = []
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._answer_event = threading.Condition()
        self._spin_error: BaseException | None = None
        self.context = Context()
        rclpy.init(args=[], context=self.context)
        self.node = rclpy.create_node(f"vos_replay_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.clock_pub = self.node.create_publisher(Clock, CLOCK_TOPIC, reliable)
        self.image_pub = self.node.create_publisher(Image, options.image_topic, reliable)
        self.mask_client = self.node.create_client(SetInitialMask, node_topic(options.node, "set_initial_mask"))
        self._thread = threading.Thread(target=self._spin, name="vos-replay-executor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        except Exception as err:
            self._spin_error = err

    def _write_inbox(self) -> None:
        while True:
            try:
                topic, msgtype, timestamp, data = self._inbox.get_nowait()
            except queue.Empty:
                return
            self.writer.write_raw(topic, msgtype, timestamp, data)

    def check(self) -> None:
        """Write what arrived to the bag; raise if the node or the replay's executor died."""
        self._write_inbox()
        if self._spin_error is not None:
            raise ReplayError(f"the replay's ROS executor failed: {self._spin_error!r}")
        self.alive()

    def close(self) -> None:
        """Stop receiving, then write what is still queued."""
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._write_inbox()

    # recording ------------------------------------------------------------------------------

    def _recorder(self, topic: str, msgtype: str, on_message: Callable[[bytes], None] | None = None):
        def callback(data: bytes) -> None:
            self._inbox.put((topic, msgtype, self.sim_time_ns, data))
            if on_message is not None:
                on_message(data)

        return callback

    def _on_labels(self, data: bytes) -> None:
        stamp = header_stamp_ns(data)
        with self._answer_event:
            self.answered.setdefault(stamp, time.monotonic())
            self._answer_event.notify_all()

    def subscribe_outputs(self) -> str:
        """Subscribe to the node's outputs with QoS matching its publishers; returns the labels topic."""
        outputs = [
            (node_topic(self.options.node, "labels"), IMAGE_TYPE, self._on_labels),
            (node_topic(self.options.node, "tracked_objects"), TRACKED_OBJECTS_TYPE, None),
            (DIAGNOSTICS_TOPIC, DIAGNOSTICS_TYPE, None),
        ]
        if self.options.record_overlay:
            outputs.append((node_topic(self.options.node, "overlay"), IMAGE_TYPE, None))
        labels_topic = outputs[0][0]
        found = _wait(lambda: self.node.count_publishers(labels_topic) > 0, self.options.startup_timeout, self.check)
        if not found:
            raise ReplayError(f"no publisher of {labels_topic} appeared within {self.options.startup_timeout:.0f} s")
        for topic, msgtype, handler in outputs:
            self.writer.add_topic(topic, msgtype)
            endpoints = self.node.get_publishers_info_by_topic(topic)
            qos = _matching_qos(endpoints) if endpoints else QoSProfile(depth=100)
            callback = self._recorder(topic, msgtype, handler)
            self.subscriptions.append(
                self.node.create_subscription(_message_class(msgtype), topic, callback, qos, raw=True)
            )
        if not _wait(lambda: self.subscriptions[0].get_publisher_count() > 0, 10.0, self.check):
            raise ReplayError(f"could not connect to {labels_topic}")
        return labels_topic

    # publishing -----------------------------------------------------------------------------

    def publish_frame(self, stamp: int, data: bytes) -> None:
        """/clock at the frame's stamp, then the frame's serialized image."""
        clock = Clock()
        clock.clock.sec, clock.clock.nanosec = divmod(stamp, 1_000_000_000)
        self.sim_time_ns = max(self.sim_time_ns, stamp)
        self.clock_pub.publish(clock)
        self.published.setdefault(stamp, time.monotonic())
        self.image_pub.publish(data)

    def idle(self, seconds: float) -> None:
        """Wait, recording meanwhile."""
        _wait(lambda: False, seconds, self.check, step=min(0.05, max(seconds, 0.0)))

    def wait_answer(self, stamp: int, timeout: float) -> bool:
        """Wait until labels with this stamp arrived (or timeout), recording meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            with self._answer_event:
                if stamp in self.answered:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._answer_event.wait(min(remaining, 0.05))
            self.check()

    def set_initial_mask(self, frame: bytes, attempts: int = 20) -> list[int]:
        """Send the bag's initial mask; re-publish its frame while the node has not received it (bounded)."""
        ready = _wait(self.mask_client.service_is_ready, self.options.startup_timeout, self.check)
        if not ready:
            raise ReplayError(
                f"service {self.mask_client.service_name} did not appear within {self.options.startup_timeout:.0f} s"
            )
        if not _wait(lambda: self.image_pub.get_subscription_count() > 0, 10.0, self.check):
            raise ReplayError(f"nobody subscribes to {self.options.image_topic}")
        request = SetInitialMask.Request()
        request.mask = deserialize_message(self.input.mask_cdr, Image)
        request.append = False
        for _ in range(attempts):
            self.publish_frame(self.input.mask_stamp, frame)
            self.idle(0.2)
            response = self._call(request, self.options.frame_timeout)
            if response.success:
                return list(response.object_ids)
        raise ReplayError(f"vos_node refused the initial mask {attempts} times: {response.message}")

    def _call(self, request, timeout: float):
        done = threading.Event()
        future = self.mask_client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not _wait(done.is_set, timeout, self.check):
            self.mask_client.remove_pending_request(future)
            raise ReplayError(f"{self.mask_client.service_name} gave no answer within {timeout:.0f} s")
        return future.result()


def _message_class(msgtype: str):
    package, kind, name = msgtype.split("/")
    module = __import__(f"{package}.{kind}", fromlist=[name])
    return getattr(module, name)


def reported_model_ms(recorded: Path, node: str) -> float:
    """Median of the ``model_ms`` values in the node's recorded /diagnostics (NaN when there are none)."""
    prefix = f"{node.rstrip('/')}:"
    values = []
    with read_bag(recorded) as bag:
        for _, _, msg in bag.messages([DIAGNOSTICS_TOPIC]):
            for status in msg.status:
                if status.name.startswith(prefix):
                    values += [float(kv.value) for kv in status.values if kv.key == "model_ms"]
    values = [v for v in values if math.isfinite(v)]
    return float(np.median(values)) if values else math.nan


def _frames(path: Path, topic: str):
    with read_bag(path) as bag:
        for _, timestamp, data in bag.raw([topic]):
            yield timestamp, header_stamp_ns(data), data


def _drive(session: _Session, options: ReplayOptions, progress: Callable[[str], None]) -> tuple[int, float, float]:
    """Publish every frame; returns (frames to answer, time of the first tracked frame, end time)."""
    bag_input = session.input
    frames = _frames(options.bag, options.image_topic)
    for index, (_, stamp, data) in enumerate(frames):
        if index < bag_input.mask_frame:
            session.publish_frame(stamp, data)
        else:
            object_ids = session.set_initial_mask(data)
            progress(f"vos_node tracks objects {object_ids} from frame {index}")
            break
    to_answer = len(bag_input.stamps) - bag_input.mask_frame - 1
    start = time.monotonic()
    wall_zero, bag_zero = None, None
    last_stamp = None
    report_every = max(1, math.ceil(to_answer / 10))
    misses = 0
    for count, (bag_time, stamp, data) in enumerate(frames, start=1):
        if options.rate > 0:
            if wall_zero is None:
                wall_zero, bag_zero = time.monotonic(), bag_time
            session.idle(wall_zero + (bag_time - bag_zero) / 1e9 / options.rate - time.monotonic())
        session.publish_frame(stamp, data)
        last_stamp = stamp
        if options.rate == 0:
            if session.wait_answer(stamp, options.frame_timeout):
                misses = 0
            else:
                misses += 1
                progress(f"no labels for stamp {stamp} within {options.frame_timeout:.0f} s: frame counted as dropped")
                if misses == MAX_CONSECUTIVE_MISSES:
                    raise ReplayError(f"vos_node answered none of the last {misses} frames; giving up")
        if count % report_every == 0 or count == to_answer:
            progress(f"frame {count}/{to_answer}: {len(session.answered)} answered")
    if options.rate > 0 and last_stamp is not None:
        session.wait_answer(last_stamp, options.frame_timeout)
    end = max(session.answered.values(), default=start)
    return to_answer, start, end


def replay(options: ReplayOptions, progress: Callable[[str], None] = print) -> ReplayResult:
    """Replay a clip bag through vos_node (started here unless ``options.launch`` is False)."""
    if options.rate < 0 or not math.isfinite(options.rate):
        raise BagError(f"rate must be 0 (as fast as the node answers) or positive, got {options.rate}")
    bag_input = inspect_replay_bag(options.bag, options.image_topic, options.mask_topic, options.ground_truth_topic)
    progress(
        f"{options.bag}: {len(bag_input.stamps)} frames {bag_input.width}x{bag_input.height} on {options.image_topic}, "
        f"initial mask on frame {bag_input.mask_frame} with objects {list(bag_input.object_ids)}"
    )
    prepare_environment()
    scratch = Path(tempfile.mkdtemp(prefix="vos_replay_"))
    recorded = options.record or scratch / "recorded"
    log_path = options.log_path or (
        options.record.with_name(options.record.name + "_vos_node.log") if options.record else scratch / "vos_node.log"
    )
    process = None
    try:
        with write_bag(recorded, options.storage) as writer:
            if options.launch:
                process = NodeProcess(node_ros_args(options), log_path)
                progress(f"started vos_node (pid {process.pid}, log {log_path})")

            def alive() -> None:
                if process is not None and process.exit_code() is not None:
                    raise ReplayError(
                        f"vos_node exited with code {process.exit_code()}; its last output ({log_path}):\n"
                        f"{process.log_tail()}"
                    )

            session = _Session(options, bag_input, writer, alive)
            try:
                labels_topic = session.subscribe_outputs()
                frames, start, end = _drive(session, options, progress)
                session.idle(0.3)  # let the last diagnostics and tracked objects arrive
            finally:
                session.close()
    finally:
        if process is not None:
            progress(f"vos_node stopped (exit code {process.stop()})")
    answered = [s for s in bag_input.stamps[bag_input.mask_frame + 1 :] if s in session.answered]
    latencies = [1000 * (session.answered[s] - session.published[s]) for s in answered]
    model_ms = reported_model_ms(recorded, options.node)
    score = None
    if bag_input.has_ground_truth:
        score = score_bags(recorded, options.bag, labels_topic, options.ground_truth_topic)
    shutil.rmtree(scratch, ignore_errors=True)  # the recording and the log, unless asked to keep them elsewhere
    return ReplayResult(
        frames=frames,
        answered=len(answered),
        latencies_ms=latencies,
        duration_s=end - start,
        recorded=options.record,
        score=score,
        node_log=log_path if process is not None and log_path.exists() else None,
        model_ms=model_ms,
    )
