"""The one client for a running vos_node: used by the bag replay, the node benchmark and the tests.

A :class:`VosClient` owns a private rclpy context (optionally on a given ROS domain), a node, and an
executor spinning on a daemon thread. It publishes frames, subscribes to the node's outputs (kept
by header stamp), calls the node's services, and waits for conditions. Every wait is bounded and
checks that the node is still alive (when the client was given its :class:`NodeProcess`) and that
the executor has not failed, so a dead node is reported with its log instead of a time-out.

Subscription callbacks run on the executor thread; they store what arrives under the client's
condition variable, and :meth:`VosClient.wait` re-evaluates conditions whenever something arrived.
"""

from __future__ import annotations

import copy
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, RegionOfInterest
from std_srvs.srv import Trigger

from vos_ros.ros.convert import labels_to_image, rgb_to_image
from vos_ros.ros.process import NodeProcess, use_local_dds
from vos_ros.ros.stamps import header_stamp_ns, make_header, stamp_to_ns
from vos_ros_interfaces.msg import ObjectPrompt, ObjectPromptArray, PromptPoint, TrackedObjectArray
from vos_ros_interfaces.srv import AddObjects, RemoveObjects, SetInitialMask

STARTUP_TIMEOUT_S = 90.0
ANSWER_TIMEOUT_S = 20.0
DIAGNOSTICS_TOPIC = "/diagnostics"
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
_names = itertools.count()


class ClientError(RuntimeError):
    """The client could not do what was asked: a service did not answer, the executor failed, ..."""


def node_topic(node: str, name: str) -> str:
    """The topic or service ``~/name`` of a node given by its fully qualified name."""
    return f"{node.rstrip('/')}/{name}"


@dataclass
class Stamped:
    """What one subscription received, by header stamp (ns): the message (unless ``keep`` is off)
    and the wall-clock time (``time.time_ns()``) of its first arrival."""

    keep: bool = True
    messages: dict[int, object] = field(default_factory=dict)
    received_ns: dict[int, int] = field(default_factory=dict)
    subscription: object = None

    def __contains__(self, stamp: int) -> bool:
        return stamp in self.received_ns

    def __getitem__(self, stamp: int):
        return self.messages[stamp]

    def __len__(self) -> int:
        return len(self.received_ns)


@dataclass(frozen=True)
class DiagnosticSample:
    """One status of the watched node from /diagnostics, with its monotonic receipt time."""

    received: float
    name: str
    level: int
    message: str
    hardware_id: str
    values: dict[str, str]


def matching_qos(endpoints, depth: int = 100) -> QoSProfile:
    """A subscription QoS compatible with all the given publishers and losing nothing it can keep."""
    best_effort = any(e.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for e in endpoints)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
    )


class VosClient:
    """A ROS client of one vos_node (``node``: its fully qualified name).

    ``domain_id`` selects a ROS domain (default: ``ROS_DOMAIN_ID`` of this process); ``process``,
    when the caller started the node, lets every wait fail fast with the node's log if it dies.
    ``image_topic`` (with ``image_qos``) creates :attr:`image_pub` for :meth:`publish_frame`; ``image_type``
    CompressedImage makes it a publisher of compressed frames (for a node with ``image_transport:=compressed``,
    on ``<image>/compressed``).
    ``outputs`` collects the node's labels, tracked objects and diagnostics from the start
    (:attr:`labels`, :attr:`objects`, :attr:`diagnostics`), as :meth:`send_frame` needs.
    ``camera`` names one camera of a node with the ``cameras`` parameter: the services and outputs are
    then that camera's (``~/<camera>/labels``, ``~/<camera>/set_initial_mask``, ...; give its
    ``image_topic``, e.g. ``/front/image``); the diagnostics stay the node's (per-camera values are keyed
    ``<camera>/<key>``).
    """

    def __init__(
        self,
        node: str = "/vos_node",
        *,
        domain_id: int | None = None,
        process: NodeProcess | None = None,
        image_topic: str | None = "/image",
        image_qos: QoSProfile = RELIABLE,
        image_type=Image,
        name: str | None = None,
        outputs: bool = False,
        camera: str | None = None,
    ):
        use_local_dds()
        self.node_name = "/" + node.strip("/")
        self.camera = camera or ""
        self.process = process
        self.context = Context()
        rclpy.init(args=[], context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name or f"vos_client_{os.getpid()}_{next(_names)}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._cond = threading.Condition()
        self._spin_error: BaseException | None = None
        self.image_pub = self.node.create_publisher(image_type, image_topic, image_qos) if image_topic else None
        self.set_mask_client = self.node.create_client(SetInitialMask, self.topic("set_initial_mask"))
        self.remove_client = self.node.create_client(RemoveObjects, self.topic("remove_objects"))
        self.reset_client = self.node.create_client(Trigger, self.topic("reset"))
        self.add_objects_client = self.node.create_client(AddObjects, self.topic("add_objects"))
        self._prompts_pub = None
        if outputs:
            self.labels = self.subscribe(self.topic("labels"), Image)
            self.objects = self.subscribe(self.topic("tracked_objects"), TrackedObjectArray)
            self.diagnostics = self.subscribe_diagnostics()
        self._thread = threading.Thread(target=self._spin, name="vos-client-executor", daemon=True)
        self._thread.start()

    def topic(self, name: str) -> str:
        """The node's ``~/name``, or the camera's ``~/<camera>/name`` for a client of one camera (the
        node's own services, such as set_parameters, are ``node_topic(client.node_name, name)``)."""
        return node_topic(self.node_name, f"{self.camera}/{name}" if self.camera else name)

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        except Exception as err:  # reported by check() on the caller's thread
            self._spin_error = err

    def close(self) -> None:
        """Stop the executor and release the context (idempotent)."""
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()

    def __enter__(self) -> VosClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # liveness and waiting ---------------------------------------------------------------------

    def check(self) -> None:
        """Raise if the executor failed or the node process (when known) has exited."""
        if self._spin_error is not None:
            raise ClientError(f"the client's ROS executor failed: {self._spin_error!r}")
        if self.process is not None:
            self.process.check_alive()

    def notify(self) -> None:
        """Wake :meth:`wait` (for callbacks a caller adds to :attr:`node` itself)."""
        with self._cond:
            self._cond.notify_all()

    def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Until ``condition()`` (evaluated under the client's lock) is true: True, or False after
        ``timeout`` seconds. Raises if the node died meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                if condition():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            self.check()

    def snapshot(self, collected):
        """A shallow copy of something the executor thread fills (an inbox's dict, a list of
        diagnostics), taken under the client's lock."""
        with self._cond:
            return copy.copy(collected)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` while still checking the node (and running :meth:`check` overrides)."""
        self.wait(lambda: False, max(0.0, seconds))

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S, services: bool = True) -> None:
        """Until the node's services exist (if ``services``) and it subscribes to the image topic."""
        deadline = time.monotonic() + timeout
        conditions = []
        if services:
            conditions += [c.service_is_ready for c in (self.set_mask_client, self.remove_client, self.reset_client)]
        if self.image_pub is not None:
            conditions.append(lambda: self.image_pub.get_subscription_count() > 0)
        for ready in conditions:
            if not self.wait(ready, deadline - time.monotonic()):
                raise ClientError(f"{self.node_name} not ready within {timeout:.0f} s{self._log_tail()}")

    # subscriptions ----------------------------------------------------------------------------

    def subscribe(
        self,
        topic: str,
        msg_type,
        qos: QoSProfile = RELIABLE,
        *,
        raw: bool = False,
        keep: bool = True,
        on_message: Callable[[object], None] | None = None,
    ) -> Stamped:
        """Collect a stamped topic by header stamp. ``raw`` receives serialized bytes (the stamp is
        read from them); ``keep=False`` stores arrival times only; ``on_message`` sees every message."""
        inbox = Stamped(keep=keep)

        def callback(msg) -> None:
            received = time.time_ns()
            stamp = header_stamp_ns(msg) if raw else stamp_to_ns(msg.header.stamp)
            with self._cond:
                inbox.received_ns.setdefault(stamp, received)
                if keep:
                    inbox.messages[stamp] = msg
                self._cond.notify_all()
            if on_message is not None:
                on_message(msg)

        inbox.subscription = self.node.create_subscription(msg_type, topic, callback, qos, raw=raw)
        return inbox

    def unsubscribe(self, inbox: Stamped) -> None:
        self.node.destroy_subscription(inbox.subscription)

    def publisher_qos(self, topic: str, depth: int = 100) -> QoSProfile | None:
        """A QoS matching the topic's current publishers, or None when it has none yet."""
        endpoints = self.node.get_publishers_info_by_topic(topic)
        return matching_qos(endpoints, depth) if endpoints else None

    def subscribe_diagnostics(self) -> list[DiagnosticSample]:
        """Collect the node's own statuses from /diagnostics (those named after the node)."""
        samples: list[DiagnosticSample] = []

        def callback(msg: DiagnosticArray) -> None:
            received = time.monotonic()
            for status in msg.status:
                if status.name.startswith(self.node_name):
                    level = status.level[0] if isinstance(status.level, bytes) else int(status.level)
                    values = {kv.key: kv.value for kv in status.values}
                    with self._cond:
                        samples.append(
                            DiagnosticSample(received, status.name, level, status.message, status.hardware_id, values)
                        )
                        self._cond.notify_all()

        self.node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, callback, RELIABLE)
        return samples

    # frames -----------------------------------------------------------------------------------

    def publish_frame(self, rgb: np.ndarray, stamp_ns: int, encoding: str = "rgb8", frame_id: str = "camera_optical"):
        """Publish an RGB frame (as rgb8, or bgr8) stamped ``stamp_ns``; returns its header."""
        header = make_header(stamp_ns, frame_id)
        if encoding == "bgr8":
            msg = rgb_to_image(np.ascontiguousarray(rgb[:, :, ::-1]), header)
            msg.encoding = "bgr8"
        elif encoding == "rgb8":
            msg = rgb_to_image(rgb, header)
        else:
            raise ValueError(f"publish_frame sends rgb8 or bgr8, not {encoding!r}")
        self.image_pub.publish(msg)
        return header

    def send_frame(
        self, rgb: np.ndarray, encoding: str = "rgb8", attempts: int = 3, timeout: float = ANSWER_TIMEOUT_S
    ) -> tuple[Image, object]:
        """Publish a frame stamped now and wait for its labels, re-publishing if a sample was lost
        (needs ``outputs=True``); returns (labels, the frame's header)."""
        stamp_ns = time.time_ns()
        for _ in range(attempts):
            header = self.publish_frame(rgb, stamp_ns, encoding)
            if self.wait(lambda: stamp_ns in self.labels, timeout / attempts):
                return self.labels[stamp_ns], header
        raise ClientError(f"no labels for stamp {stamp_ns} within {timeout:.0f} s{self._log_tail()}")

    def tracked(self, stamp_ns: int, timeout: float = ANSWER_TIMEOUT_S) -> TrackedObjectArray:
        """The tracked objects the node published for a frame (needs ``outputs=True``)."""
        if not self.wait(lambda: stamp_ns in self.objects, timeout):
            raise ClientError(f"no tracked objects for stamp {stamp_ns} within {timeout:.0f} s{self._log_tail()}")
        return self.objects[stamp_ns]

    def latest_diagnostics(self, after: float | None = None, timeout: float = 10.0) -> dict[str, str]:
        """The key-values of the node's first status received after ``after`` (monotonic; default
        now), waiting for one (needs ``outputs=True``)."""
        after = time.monotonic() if after is None else after
        if not self.wait(lambda: self.diagnostics and self.diagnostics[-1].received > after, timeout):
            raise ClientError(f"no diagnostics from {self.node_name} within {timeout:.0f} s")
        return self.diagnostics[-1].values

    def _log_tail(self) -> str:
        return f":\n{self.process.log_tail(40)}" if self.process is not None else ""

    # services ---------------------------------------------------------------------------------

    def call(self, service_client, request, timeout: float = ANSWER_TIMEOUT_S):
        """Call a service and wait for its response (bounded; raises ClientError on time-out)."""
        done = threading.Event()
        future = service_client.call_async(request)
        future.add_done_callback(lambda _: self.notify())
        future.add_done_callback(lambda _: done.set())
        if not self.wait(done.is_set, timeout):
            service_client.remove_pending_request(future)
            raise ClientError(f"{service_client.srv_name} gave no answer within {timeout:.0f} s")
        return future.result()

    def set_initial_mask(
        self,
        mask: np.ndarray | Image,
        stamp_ns: int = 0,
        labels=(),
        append: bool = False,
        timeout: float = ANSWER_TIMEOUT_S,
    ):
        """``~/set_initial_mask`` with a label map (sent as mono16 stamped ``stamp_ns``) or a ready Image."""
        if isinstance(mask, np.ndarray):
            mask = labels_to_image(mask, make_header(stamp_ns))
        request = SetInitialMask.Request(mask=mask, labels=list(labels), append=append)
        return self.call(self.set_mask_client, request, timeout)

    def add_objects(
        self,
        boxes,
        points=(),
        labels=(),
        append: bool = True,
        stamp_ns: int = 0,
        timeout: float = ANSWER_TIMEOUT_S,
    ):
        """``~/add_objects``: one new object per box (x0, y0, x1, y1, pixels), clicks as
        (object index, x, y, positive), on the frame stamped ``stamp_ns`` (0: the newest)."""
        request = AddObjects.Request(
            header=make_header(stamp_ns),
            boxes=[box_roi(box) for box in boxes],
            points=[
                PromptPoint(object_index=int(k), x=float(x), y=float(y), positive=bool(positive))
                for k, x, y, positive in points
            ],
            labels=[str(label) for label in labels],
            append=append,
        )
        if not self.wait(self.add_objects_client.service_is_ready, timeout):
            raise ClientError(f"{self.add_objects_client.srv_name} is not available{self._log_tail()}")
        return self.call(self.add_objects_client, request, timeout)

    def publish_prompts(self, boxes, stamp_ns: int, labels=(), scores=()) -> None:
        """Publish detector boxes (x0, y0, x1, y1) on the node's ``~/prompts``, stamped like their image."""
        if self._prompts_pub is None:
            self._prompts_pub = self.node.create_publisher(ObjectPromptArray, self.topic("prompts"), RELIABLE)
        labels = list(labels) or [""] * len(boxes)
        scores = list(scores) or [1.0] * len(boxes)
        prompts = [
            ObjectPrompt(box=box_roi(box), label=str(label), score=float(score))
            for box, label, score in zip(boxes, labels, scores)
        ]
        self._prompts_pub.publish(ObjectPromptArray(header=make_header(stamp_ns), prompts=prompts))

    def prompt_subscribers(self) -> int:
        """How many subscribers the ``~/prompts`` publisher has (0 before the first publish_prompts)."""
        return 0 if self._prompts_pub is None else self._prompts_pub.get_subscription_count()

    def remove_objects(self, ids, timeout: float = ANSWER_TIMEOUT_S):
        return self.call(self.remove_client, RemoveObjects.Request(object_ids=list(ids)), timeout)

    def reset(self, timeout: float = ANSWER_TIMEOUT_S):
        return self.call(self.reset_client, Trigger.Request(), timeout)


def box_roi(box) -> RegionOfInterest:
    """A box (x0, y0, x1, y1) in pixels as a RegionOfInterest covering it (ValueError if a corner is negative)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if min(x0, y0, x1, y1) < 0:
        raise ValueError(f"box {box} has a negative coordinate; RegionOfInterest holds unsigned pixels")
    left, top = int(np.floor(x0)), int(np.floor(y0))
    width, height = max(0, int(np.ceil(x1)) - left), max(0, int(np.ceil(y1)) - top)
    return RegionOfInterest(x_offset=left, y_offset=top, width=width, height=height)


@contextmanager
def launch_node(
    ros_args: list[str],
    log_path: Path,
    *,
    domain_id: int | None = None,
    node: str = "/vos_node",
    startup_timeout: float = STARTUP_TIMEOUT_S,
    **client_options,
) -> Iterator[VosClient]:
    """Start vos_node with ``ros_args`` (see :func:`vos_ros.ros.process.node_ros_args`) and yield a
    ready :class:`VosClient` of it; the client is closed and the node stopped however the block ends."""
    process = NodeProcess(ros_args, log_path, domain_id=domain_id)
    client = None
    try:
        client = VosClient(node, domain_id=domain_id, process=process, **client_options)
        client.wait_ready(startup_timeout)
        yield client
    finally:
        if client is not None:
            client.close()
        process.stop()
