"""Replaying a clip bag through vos_node over DDS and recording what the node publishes.

The bag's serialized images (Image, or CompressedImage published on ``<image>/compressed`` for a node
with ``image_transport:=compressed``) are published unchanged (original stamps), preceded by a ``/clock``
message at the frame's stamp (the node runs with ``use_sim_time``); the initial mask goes to
``~/set_initial_mask`` stamped like its frame. At rate 0 the next frame leaves only when the node's
labels for the previous one arrived, so no frame is dropped. Every wait is bounded; a node started
here is always ended. The ROS side is :class:`vos_ros.ros.client.VosClient`; this module adds the
recording and the drive loop.
"""

from __future__ import annotations

import math
import queue
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image

from vos_ros.ros.client import DIAGNOSTICS_TOPIC, RELIABLE, ClientError, VosClient
from vos_ros.ros.process import NodeExited, NodeProcess, node_ros_args, use_local_dds
from vos_ros.ros.stamps import header_stamp_ns, set_stamp
from vos_ros_interfaces.srv import SetInitialMask

from .bagfiles import BagError, read_bag, write_bag
from .clip_bag import GROUND_TRUTH_TOPIC, IMAGE_TOPIC, INITIAL_MASK_TOPIC
from .replay_input import ReplayInput, inspect_replay_bag
from .replay_result import ReplayResult, reported_model_ms
from .scoring import score_bags
from .typestore import DIAGNOSTICS_TYPE, IMAGE_TYPE, TRACKED_OBJECTS_TYPE

CLOCK_TOPIC = "/clock"
MAX_CONSECUTIVE_MISSES = 3  # at rate 0: frames in a row without labels before the replay gives up


class ReplayError(ClientError):
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

    def ros_args(self, bag_input: ReplayInput | None = None) -> list[str]:
        """The --ros-args a node started by the replay gets (the user's --node-args come last and win);
        for a bag of compressed frames, the node takes them with ``image_transport:=compressed``."""
        parameters = {"use_sim_time": True}
        if bag_input is not None and bag_input.compressed:
            parameters["image_transport"] = "compressed"
        return node_ros_args(self.node, node_image_topic(self, bag_input), parameters, self.node_args)


def node_image_topic(options: ReplayOptions, bag_input: ReplayInput | None) -> str:
    """The node's ``image`` topic: the bag's topic, or for compressed frames the topic they are the
    ``/compressed`` of (image_transport's naming)."""
    if bag_input is None:
        return options.image_topic
    if bag_input.compressed:
        return bag_input.image_topic.removesuffix("/compressed")
    return bag_input.image_topic


def published_image_topic(options: ReplayOptions, bag_input: ReplayInput) -> str:
    """Where the replay publishes the frames: the node's image topic, plus ``/compressed`` for compressed frames."""
    topic = node_image_topic(options, bag_input)
    return f"{topic}/compressed" if bag_input.compressed else topic


class _Recorder(VosClient):
    """The replay's client of the node: publishes /clock and the bag's frames, records the node's
    outputs into a bag and notes when each frame was published and answered.

    Subscription callbacks run on the executor thread and only queue what they receive; the bag
    is written on the calling thread (in :meth:`check`, which every wait runs), as the sqlite3
    storage requires.
    """

    def __init__(self, options: ReplayOptions, bag_input: ReplayInput, writer, process: NodeProcess | None):
        super().__init__(
            options.node,
            process=process,
            image_topic=published_image_topic(options, bag_input),
            image_type=CompressedImage if bag_input.compressed else Image,
        )
        self.options = options
        self.input = bag_input
        self.writer = writer
        self.sim_time_ns = 0
        self.published: dict[int, float] = {}
        self.labels = None
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.clock_pub = self.node.create_publisher(Clock, CLOCK_TOPIC, RELIABLE)

    def check(self) -> None:
        """Write what arrived to the bag; raise if the node or the executor died."""
        self._write_inbox()
        super().check()

    def _write_inbox(self) -> None:
        while True:
            try:
                topic, msgtype, timestamp, data = self._inbox.get_nowait()
            except queue.Empty:
                return
            self.writer.write_raw(topic, msgtype, timestamp, data)

    def close(self) -> None:
        """Stop receiving, then write what is still queued."""
        super().close()
        self._write_inbox()

    def answered_at(self, stamp: int) -> float:
        """When the labels of a frame arrived (wall clock, s)."""
        return self.labels.received_ns[stamp] / 1e9

    def record_outputs(self) -> str:
        """Subscribe to the node's outputs with QoS matching its publishers and record them; returns
        the labels topic."""
        outputs = [
            (self.topic("labels"), IMAGE_TYPE),
            (self.topic("tracked_objects"), TRACKED_OBJECTS_TYPE),
            (DIAGNOSTICS_TOPIC, DIAGNOSTICS_TYPE),
        ]
        if self.options.record_overlay:
            outputs.append((self.topic("overlay"), IMAGE_TYPE))
        labels_topic = outputs[0][0]
        if not self.wait(lambda: self.node.count_publishers(labels_topic) > 0, self.options.startup_timeout):
            raise ReplayError(f"no publisher of {labels_topic} appeared within {self.options.startup_timeout:.0f} s")
        for topic, msgtype in outputs:
            self.writer.add_topic(topic, msgtype)
            qos = self.publisher_qos(topic) or QoSProfile(depth=100)
            record = self._recorder(topic, msgtype)
            if topic == labels_topic:
                self.labels = self.subscribe(
                    topic, _message_class(msgtype), qos, raw=True, keep=False, on_message=record
                )
            else:
                self.node.create_subscription(_message_class(msgtype), topic, record, qos, raw=True)
        if not self.wait(lambda: self.labels.subscription.get_publisher_count() > 0, 10.0):
            raise ReplayError(f"could not connect to {labels_topic}")
        return labels_topic

    def _recorder(self, topic: str, msgtype: str) -> Callable[[bytes], None]:
        def callback(data: bytes) -> None:
            self._inbox.put((topic, msgtype, self.sim_time_ns, data))

        return callback

    # publishing -----------------------------------------------------------------------------

    def publish_raw_frame(self, stamp: int, data: bytes) -> None:
        """/clock at the frame's stamp, then the frame's serialized image."""
        clock = Clock()
        set_stamp(clock.clock, stamp)
        self.sim_time_ns = max(self.sim_time_ns, stamp)
        self.clock_pub.publish(clock)
        self.published.setdefault(stamp, time.time_ns() / 1e9)
        self.image_pub.publish(data)

    def wait_answer(self, stamp: int, timeout: float) -> bool:
        """Wait until labels with this stamp arrived (or timeout), recording meanwhile."""
        return self.wait(lambda: stamp in self.labels, timeout)

    def send_initial_mask(self, frame: bytes, attempts: int = 20) -> list[int]:
        """Send the bag's initial mask; re-publish its frame while the node has not received it (bounded)."""
        self.wait_ready(self.options.startup_timeout)
        request = SetInitialMask.Request()
        request.mask = deserialize_message(self.input.mask_cdr, Image)
        request.append = False
        for _ in range(attempts):
            self.publish_raw_frame(self.input.mask_stamp, frame)
            self.sleep(0.2)
            response = self.call(self.set_mask_client, request, self.options.frame_timeout)
            if response.success:
                return list(response.object_ids)
        raise ReplayError(f"vos_node refused the initial mask {attempts} times: {response.message}")


def _message_class(msgtype: str):
    package, kind, name = msgtype.split("/")
    module = __import__(f"{package}.{kind}", fromlist=[name])
    return getattr(module, name)


def _frames(path: Path, topic: str):
    with read_bag(path) as bag:
        for _, timestamp, data in bag.raw([topic]):
            yield timestamp, header_stamp_ns(data), data


def _drive(session: _Recorder, options: ReplayOptions, progress: Callable[[str], None]) -> tuple[int, float, float]:
    """Publish every frame; returns (frames to answer, time of the first tracked frame, end time)."""
    bag_input = session.input
    frames = _frames(options.bag, bag_input.image_topic)
    for index, (_, stamp, data) in enumerate(frames):
        if index < bag_input.mask_frame:
            session.publish_raw_frame(stamp, data)
        else:
            object_ids = session.send_initial_mask(data)
            progress(f"vos_node tracks objects {object_ids} from frame {index}")
            break
    to_answer = len(bag_input.stamps) - bag_input.mask_frame - 1
    start = time.time_ns() / 1e9
    wall_zero, bag_zero = None, None
    last_stamp = None
    report_every = max(1, math.ceil(to_answer / 10))
    misses = 0
    for count, (bag_time, stamp, data) in enumerate(frames, start=1):
        if options.rate > 0:
            if wall_zero is None:
                wall_zero, bag_zero = time.monotonic(), bag_time
            session.sleep(wall_zero + (bag_time - bag_zero) / 1e9 / options.rate - time.monotonic())
        session.publish_raw_frame(stamp, data)
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
            progress(f"frame {count}/{to_answer}: {len(session.labels)} answered")
    if options.rate > 0 and last_stamp is not None:
        session.wait_answer(last_stamp, options.frame_timeout)
    end = max((session.answered_at(s) for s in session.labels.received_ns), default=start)
    return to_answer, start, end


def replay(options: ReplayOptions, progress: Callable[[str], None] = print) -> ReplayResult:
    """Replay a clip bag through vos_node (started here unless ``options.launch`` is False)."""
    if options.rate < 0 or not math.isfinite(options.rate):
        raise BagError(f"rate must be 0 (as fast as the node answers) or positive, got {options.rate}")
    bag_input = inspect_replay_bag(options.bag, options.image_topic, options.mask_topic, options.ground_truth_topic)
    progress(
        f"{options.bag}: {len(bag_input.stamps)} frames {bag_input.width}x{bag_input.height} on {bag_input.image_topic}"
        f"{' (compressed: the node takes them with image_transport:=compressed)' if bag_input.compressed else ''}, "
        f"initial mask on frame {bag_input.mask_frame} with objects {list(bag_input.object_ids)}"
    )
    use_local_dds()
    scratch = Path(tempfile.mkdtemp(prefix="vos_replay_"))
    recorded = options.record or scratch / "recorded"
    log_path = options.log_path or (
        options.record.with_name(options.record.name + "_vos_node.log") if options.record else scratch / "vos_node.log"
    )
    process = None
    try:
        with write_bag(recorded, options.storage) as writer:
            if options.launch:
                process = NodeProcess(options.ros_args(bag_input), log_path)
                progress(f"started vos_node (pid {process.pid}, log {log_path})")
            session = _Recorder(options, bag_input, writer, process)
            try:
                labels_topic = session.record_outputs()
                frames, start, end = _drive(session, options, progress)
                session.sleep(0.3)  # let the last diagnostics and tracked objects arrive
            except ReplayError:
                raise
            except (ClientError, NodeExited) as err:  # the node died or stopped answering
                raise ReplayError(str(err)) from err
            finally:
                session.close()
    finally:
        if process is not None:
            progress(f"vos_node stopped (exit code {process.stop()})")
    answered = [s for s in bag_input.stamps[bag_input.mask_frame + 1 :] if s in session.labels]
    latencies = [1000 * (session.answered_at(s) - session.published[s]) for s in answered]
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
