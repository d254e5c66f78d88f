"""One camera of vos_node: its inputs, session, services, outputs and figures.

A :class:`CameraChannel` owns everything that belongs to one video stream: the image (and depth,
camera_info) subscriptions, the tracking session over the node's network, the recent frames that
masks and prompts are matched to by stamp, the newest-frame slot the node's worker takes frames
from, the stream watch (time jumps, frame_id changes), the state kept in ``state_dir``, the
services (``~/set_initial_mask``, ``~/add_objects``, ``~/prompts``, ``~/remove_objects``,
``~/reset``), the output publishers and the counters for diagnostics.

The unnamed camera (the default: no ``cameras`` parameter) uses exactly the node's historic
names: ``image``, ``depth``, ``camera_info`` and ``~/labels``, ``~/set_initial_mask``, ... A camera
named ``front`` uses ``front/image``, ``front/depth``, ``front/camera_info`` and ``~/front/labels``,
``~/front/set_initial_mask``, ... The node owns the network, the parameters, the lifecycle, the
diagnostics and the worker that runs the frames of all cameras as one batch.
"""

from __future__ import annotations

import math
import os
import threading
import time

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import qos_policy_name_from_kind, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from vos_ros.engine.errors import VosError
from vos_ros.engine.result import FrameResult
from vos_ros.engine.session import Session
from vos_ros.ros.compressed import compressed_to_rgb
from vos_ros.ros.continuity import PersistentState, StreamEvent, StreamWatch, resolution_change
from vos_ros.ros.convert import ImageConversionError, image_to_rgb, labels_to_image, mask_to_labels
from vos_ros.ros.depth import DepthError
from vos_ros.ros.depth_fusion import DepthFusion
from vos_ros.ros.frames import Frame, NewestFrameSlot, RecentFrames
from vos_ros.ros.messages import overlay_messages, tracked_object_array
from vos_ros.ros.prompts import PromptInputs
from vos_ros.ros.spatial_messages import ObjectMarkers, objects_cloud, set_positions
from vos_ros.ros.stamps import format_stamp, stamp_to_ns
from vos_ros.ros.stats import Counters, SlidingWindow
from vos_ros_interfaces.msg import TrackedObjectArray
from vos_ros_interfaces.srv import RemoveObjects, SetInitialMask

IMAGE_TOPIC = "image"  # relative: remap it to the camera topic
DEPTH_TOPIC = "depth"  # registered depth image; remap like the image
CAMERA_INFO_TOPIC = "camera_info"  # of the colour camera
STATS_SPAN_S = 5.0

# per-camera figures in the node's diagnostic status, as "<camera>/<key>"
CAMERA_DIAGNOSTIC_KEYS = (
    "frames_received",
    "frames_processed",
    "frames_dropped",
    "input_hz",
    "output_hz",
    "latency_ms",
    "model_ms",
    "seconds_since_input",
    "objects_tracked",
    "objects_visible",
    "frame_buffer_mb",
)


def camera_state_dir(state_dir: str, camera: str) -> str:
    """Where a camera keeps its tracking state: ``state_dir`` itself, or its subfolder ``<camera>``."""
    return os.path.join(state_dir, camera) if state_dir and camera else state_dir


class CameraChannel:
    """One camera's inputs, session, services and outputs in a :class:`~vos_ros.ros.node.VosNode`.

    ``name`` is "" for the node's one unnamed camera. Services exist from construction (they answer
    "not active" until the node is); ``configure`` makes the session and publishers, ``activate`` the
    subscriptions, ``stop`` and ``release`` undo them. ``prepare``/``finish`` are the worker's two halves
    of a frame (under :attr:`lock`, around the batched step) and ``publish`` sends its outputs.
    """

    def __init__(self, node, name: str, index: int):
        self.node = node
        self.name = name
        self.index = index
        self.lock = threading.Lock()  # the session's: services and the worker take it
        self.session: Session | None = None
        live = node._live
        self.recent = RecentFrames(live["frame_buffer_size"])
        self.slot = NewestFrameSlot()
        self.dropped_before = 0  # frames dropped by the slots of earlier configurations
        self.counters = Counters()
        self.inputs = SlidingWindow(STATS_SPAN_S)
        self.outputs = SlidingWindow(STATS_SPAN_S)
        self.model_ms = SlidingWindow(STATS_SPAN_S)
        self.queue_ms = SlidingWindow(STATS_SPAN_S)
        self.input_delay_ms = SlidingWindow(STATS_SPAN_S)
        self.latency_ms = SlidingWindow(STATS_SPAN_S)
        self.last_input = -float("inf")
        self.mask_stamp_ns = 0
        self.mask_applied = 0.0
        self.objects_tracked = 0
        self.objects_visible = 0
        logger = node.get_logger()
        self.persistent = PersistentState(
            camera_state_dir(live["state_dir"], name), self._logged(logger.info), self._logged(logger.warning)
        )
        self.stream = StreamWatch(live["max_forward_jump"])
        self.depth: DepthFusion | None = None
        self.markers: ObjectMarkers | None = None
        self.output_pubs: list = []
        self.input_subs: list = []
        self.image_sub = self.depth_sub = self.info_sub = None

        services = MutuallyExclusiveCallbackGroup()
        node.create_service(
            SetInitialMask, self.private("set_initial_mask"), self.on_set_initial_mask, callback_group=services
        )
        node.create_service(
            RemoveObjects, self.private("remove_objects"), self.on_remove_objects, callback_group=services
        )
        node.create_service(Trigger, self.private("reset"), self.on_reset, callback_group=services)
        self.prompt_inputs = PromptInputs(self)  # ~/add_objects and ~/prompts

    # names -------------------------------------------------------------------------------------

    def topic(self, base: str) -> str:
        """An input topic of this camera, relative to the node's namespace: ``base`` or ``<camera>/base``."""
        return f"{self.name}/{base}" if self.name else base

    def private(self, base: str) -> str:
        """An output topic or service of this camera: ``~/base`` or ``~/<camera>/base``."""
        return f"~/{self.name}/{base}" if self.name else f"~/{base}"

    def describe(self) -> str:
        """How log lines name this camera ("" for the unnamed one)."""
        return f"camera {self.name!r}: " if self.name else ""

    def _logged(self, log):
        return lambda message: log(self.describe() + message)

    # the node's parts this camera uses ----------------------------------------------------------

    @property
    def live(self) -> dict:
        """The node's live parameter values."""
        return self.node._live

    def get_logger(self):
        return self.node.get_logger()

    def warn(self, message: str) -> None:
        self.node._warn(self.describe() + message)

    def refusal(self) -> str | None:
        """Why the services cannot act now (None while the node is active)."""
        return self.node._refusal()

    def count(self, name: str) -> int:
        return self.counters[name]

    @property
    def object_ids(self) -> list[int]:
        with self.lock:
            return list(self.session.object_ids) if self.session is not None else []

    # lifecycle ---------------------------------------------------------------------------------

    def make_session(self, network, options: dict) -> Session:
        """A new session over ``network`` (the stored one when ``state_dir`` holds it); not yet installed."""
        restored = self.persistent.restore(lambda state: Session.from_state(network, state, **options))
        return restored if restored is not None else Session(network, **options)

    def configure(self, session: Session, slot: NewestFrameSlot) -> None:
        """Take the session and the worker's slot; create the output publishers."""
        with self.lock:
            self.session = session
            self.objects_tracked = len(session.object_ids) if session.initialized else 0
            self.objects_visible = 0
        self.slot = slot
        node = self.node
        overrides = QoSOverridingOptions.with_default_policies()
        qos = node.output_qos

        def publisher(msg_type, base: str, **options):
            return node.create_lifecycle_publisher(msg_type, self.private(base), qos, **options)

        self.labels_pub = publisher(Image, "labels", qos_overriding_options=overrides)
        self.objects_pub = publisher(TrackedObjectArray, "tracked_objects", qos_overriding_options=overrides)
        self.overlay_pub = publisher(Image, "overlay", qos_overriding_options=overrides)
        self.overlay_jpeg_pub = publisher(CompressedImage, "overlay/compressed", qos_overriding_options=overrides)
        self.output_pubs = [self.labels_pub, self.objects_pub, self.overlay_pub, self.overlay_jpeg_pub]
        if self.live["use_depth"]:
            self.depth = DepthFusion(self.live["depth_slop"], max_forward_jump_s=self.live["max_forward_jump"])
            self.markers = ObjectMarkers()
            self.cloud_pub = publisher(PointCloud2, "objects_cloud", qos_overriding_options=overrides)
            self.markers_pub = publisher(MarkerArray, "markers")
            self.output_pubs += [self.cloud_pub, self.markers_pub]

    def activate(self) -> None:
        """Subscribe to the camera's image (raw or ``<image>/compressed``), depth and camera_info."""
        node = self.node
        overrides = QoSOverridingOptions.with_default_policies()
        compressed = self.live["image_transport"] == "compressed"  # then <image>/compressed, as image_transport
        image = self.topic(IMAGE_TOPIC)
        self.image_sub = node.create_subscription(
            CompressedImage if compressed else Image,
            node.resolve_topic_name(image) + "/compressed" if compressed else image,
            self.on_compressed_image if compressed else self.on_image,
            node.image_qos,
            callback_group=MutuallyExclusiveCallbackGroup(),
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self.on_incompatible_qos),
            qos_overriding_options=overrides,
        )
        self.input_subs = [self.image_sub]
        if self.depth is not None:
            depth_inputs = MutuallyExclusiveCallbackGroup()
            self.depth_sub = node.create_subscription(
                Image,
                self.topic(DEPTH_TOPIC),
                self.on_depth,
                qos_profile_sensor_data,
                callback_group=depth_inputs,
                qos_overriding_options=overrides,
            )
            self.info_sub = node.create_subscription(
                CameraInfo,
                self.topic(CAMERA_INFO_TOPIC),
                self.on_camera_info,
                qos_profile_sensor_data,
                callback_group=depth_inputs,
            )
            self.input_subs += [self.depth_sub, self.info_sub]

    def stop(self) -> None:
        """Unsubscribe and forget a waiting frame; returns once the frame in progress is finished."""
        for subscription in self.input_subs:
            self.node.destroy_subscription(subscription)
        self.input_subs = []
        self.slot.discard_older_than(2**63)
        with self.lock:
            pass

    def release(self) -> None:
        """Destroy the publishers and forget the session (after the worker has stopped)."""
        self.dropped_before += self.slot.dropped
        self.slot = NewestFrameSlot()
        for publisher in self.output_pubs:
            self.node.destroy_lifecycle_publisher(publisher)
        self.output_pubs = []
        with self.lock:
            self.session = None
            self.objects_tracked = self.objects_visible = 0
        self.depth = None
        self.recent.clear()

    # input -------------------------------------------------------------------------------------

    def on_incompatible_qos(self, event) -> None:
        self.warn(
            f"a publisher of {self.image_sub.topic_name} has QoS incompatible with this subscription "
            f"({qos_policy_name_from_kind(event.last_policy_kind)}); its images are not received"
        )

    def on_image(self, msg: Image) -> None:
        self.take_frame(msg, image_to_rgb)

    def on_compressed_image(self, msg: CompressedImage) -> None:
        self.take_frame(msg, compressed_to_rgb)

    def take_frame(self, msg: Image | CompressedImage, decode) -> None:
        """Decode an image, keep it among the recent frames and offer it to the worker."""
        self.counters.add("frames_received")
        self.inputs.add()
        self.last_input = time.monotonic()
        topic = self.image_sub.topic_name if self.image_sub is not None else self.topic(IMAGE_TOPIC)
        try:
            rgb = decode(msg)
        except ImageConversionError as error:
            self.counters.add("bad_frames")
            self.warn(f"dropping an image on {topic}: {error}")
            return
        stamp = stamp_to_ns(msg.header.stamp)
        delay_ms = (self.node.get_clock().now().nanoseconds - stamp) / 1e6
        event = self.stream.observe(stamp, msg.header.frame_id)
        if event.jump is not None or event.new_frame_id is not None:
            self.on_stream_event(event, topic)
        frame = Frame(header=msg.header, rgb=rgb, stamp_ns=stamp, delay_ms=delay_ms, epoch=self.stream.epoch)
        self.recent.add(frame, msg, decode)
        self.slot.put(frame)

    def on_depth(self, msg: Image) -> None:
        depth = self.depth
        if depth is None:
            return  # released meanwhile
        try:
            depth.add_depth(msg, stamp_to_ns(msg.header.stamp))
        except DepthError as error:
            self.warn(f"ignoring a depth image on {self.depth_sub.topic_name}: {error}")

    def on_camera_info(self, msg: CameraInfo) -> None:
        depth = self.depth
        if depth is None:
            return
        try:
            depth.set_camera_info(msg, self.live["camera_geometry"])
        except DepthError as error:
            self.warn(f"refusing CameraInfo on {self.info_sub.topic_name}: {error}")

    # a frame through the worker -------------------------------------------------------------------

    def prepare(self, frame: Frame) -> str:
        """Under :attr:`lock`, before the batched step: "skip" (drop the frame), "empty" (no objects yet:
        publish background) or "step" (run it through the session)."""
        height, width = frame.rgb.shape[:2]
        if not self.node._processing or self.session is None:
            return "skip"  # deactivated meanwhile
        if frame.received < self.mask_applied and frame.stamp_ns < self.mask_stamp_ns:
            return "skip"  # arrived before a mask for a later frame: tracking has moved past it
        if self.session.initialized and self.session.frame_size != (height, width):
            self.on_resolution_change((height, width))  # carries the objects over, or resets
        if not self.session.initialized:
            return "empty"
        self.queue_ms.add((time.monotonic() - frame.received) * 1000.0)
        self.input_delay_ms.add(frame.delay_ms)
        self.session.lost_threshold = self.live["lost_threshold"]
        self.session.fragment_filter = self.node._fragment_filter()
        return "step"

    def finish(self, result: FrameResult | VosError) -> bool:
        """Under :attr:`lock`, after the step: take the result's figures; False when the session refused the frame."""
        if isinstance(result, VosError):
            self.counters.add("bad_frames")
            self.warn(f"dropping a frame: {result}")
            return False
        self.model_ms.add(result.model_ms)
        self.objects_tracked = len(result.objects)
        self.objects_visible = sum(o.visible for o in result.objects)
        return True

    def publish(self, frame: Frame, result: FrameResult | None) -> None:
        """Labels, tracked objects (with 3D positions), and the overlay while subscribed, with the frame's header."""
        height, width = frame.rgb.shape[:2]
        if result is None:
            label_map, objects = np.zeros((height, width), np.uint16), []
        else:
            label_map, objects = result.label_map, result.objects
        self.labels_pub.publish(labels_to_image(label_map, frame.header))
        self.latency_ms.add((self.node.get_clock().now().nanoseconds - frame.stamp_ns) / 1e6)
        objects_msg = tracked_object_array(objects, frame.header)
        if self.depth is not None:
            self.publish_3d(frame, label_map, objects, objects_msg)
        self.objects_pub.publish(objects_msg)
        raw_overlay = self.overlay_pub.get_subscription_count() > 0
        jpeg_overlay = self.overlay_jpeg_pub.get_subscription_count() > 0
        if raw_overlay or jpeg_overlay:
            image, jpeg = overlay_messages(
                frame.rgb,
                label_map,
                self.live["overlay_alpha"],
                frame.header,
                raw=raw_overlay,
                jpeg_quality=self.live["overlay_jpeg_quality"] if jpeg_overlay else None,
            )
            for publisher, msg in ((self.overlay_pub, image), (self.overlay_jpeg_pub, jpeg)):
                if msg is not None:
                    publisher.publish(msg)
            self.counters.add("overlays_published")
        self.counters.add("frames_processed")
        self.outputs.add()

    def publish_3d(self, frame: Frame, label_map: np.ndarray, objects, objects_msg) -> None:
        """Positions from the paired depth into ``objects_msg``; the cloud (while subscribed) and markers out."""
        want_cloud = self.cloud_pub.get_subscription_count() > 0
        if frame.epoch != self.stream.epoch:  # the stamps jumped since this frame: no depth pairs with it
            set_positions(objects_msg, {})
            return
        live = self.live
        located = self.depth.locate(
            frame.stamp_ns,
            label_map,
            [o.id for o in objects if o.visible],
            slop_s=live["depth_slop"],
            erosion=live["depth_erosion"],
            min_valid=live["min_valid_depths"],
            cloud_stride=live["cloud_stride"] if want_cloud else None,
        )
        if located.problem is not None:
            self.warn(f"3D outputs are NaN for this frame: {located.problem}")
        positions = located.geometry.positions if located.geometry is not None else {}
        set_positions(objects_msg, positions)
        if want_cloud and located.geometry is not None:
            self.cloud_pub.publish(objects_cloud(located.geometry.points, located.geometry.point_ids, frame.header))
        markers = self.markers.update([(o.id, o.label, positions.get(o.id)) for o in objects], frame.header)
        if markers.markers:
            self.markers_pub.publish(markers)

    # services ----------------------------------------------------------------------------------

    def on_set_initial_mask(self, request, response):
        response.success = False
        if (refusal := self.refusal()) is not None:
            response.message = refusal
            return response
        try:
            labels = mask_to_labels(request.mask)
        except ImageConversionError as error:
            response.message = f"bad mask image: {error}"
            return response
        wanted = stamp_to_ns(request.mask.header.stamp)
        frame = self.recent.find(wanted)
        if frame is None:
            response.message = (
                f"{self.describe()}no recent frame has the mask's stamp {format_stamp(wanted)} s "
                f"({self.recent.describe()})"
            )
            return response
        height, width = frame.rgb.shape[:2]
        if labels.shape != (height, width):
            response.message = f"mask is {labels.shape[1]}x{labels.shape[0]} but its frame is {width}x{height}"
            return response
        names = list(request.labels) or None
        with self.lock:
            ids = sorted(int(v) for v in np.unique(labels) if v != 0)
            tracked = set(self.session.object_ids)
            if request.append and tracked & set(ids):
                response.message = (
                    f"append: ids {sorted(tracked & set(ids))} are already tracked; remove them first or use "
                    "append=false"
                )
                return response
            try:
                ids = self.session.set_mask(frame.rgb, labels, names, append=request.append)
            except VosError as error:
                response.message = f"mask refused: {error}"
                return response
            self.seeded(frame)
            tracked = self.session.object_ids
        response.success = True
        response.object_ids = ids
        response.message = f"{self.describe()}tracking objects {tracked} from stamp {format_stamp(frame.stamp_ns)} s"
        self.get_logger().info(response.message)
        return response

    def seeded(self, frame: Frame) -> None:
        """Bookkeeping after the session took objects on ``frame`` (called under :attr:`lock`)."""
        self.mask_stamp_ns = frame.stamp_ns
        self.mask_applied = time.monotonic()
        self.objects_tracked = len(self.session.object_ids)
        self.persistent.save(self.session)
        self.slot.discard_older_than(frame.stamp_ns)
        self.counters.add("masks_applied")

    def on_remove_objects(self, request, response):
        if (refusal := self.refusal()) is not None:
            response.success, response.message = False, refusal
            return response
        with self.lock:
            try:
                removed = self.session.remove(request.object_ids)
            except VosError as error:
                response.success, response.message = False, str(error)
                return response
            remaining = self.session.object_ids
            self.objects_tracked = len(remaining)
            self.persistent.save(self.session)
        response.success = True
        response.message = f"{self.describe()}removed {removed}; tracking {remaining}"
        self.get_logger().info(response.message)
        return response

    def on_reset(self, request, response):
        if (refusal := self.refusal()) is not None:
            response.success, response.message = False, refusal
            return response
        with self.lock:
            forgotten = self.session.object_ids
            self.session.reset()
            self.persistent.clear()
            self.objects_tracked = self.objects_visible = 0
        response.success = True
        response.message = f"{self.describe()}forgot objects {forgotten}; waiting for a new mask"
        self.get_logger().info(response.message)
        return response

    # faults (issue 24): time jumps, camera changes ---------------------------------------------

    def on_stream_event(self, event: StreamEvent, topic: str) -> None:
        """A time jump clears what pairs by stamp (objects stay); a new frame_id is logged once."""
        if event.jump is not None:
            self.clear_pairing(f"{event.jump.describe()} on {topic}")
        if event.new_frame_id is not None:
            self.get_logger().warning(
                f"the frame_id of {topic} changed from {event.new_frame_id[0]!r} to "
                f"{event.new_frame_id[1]!r}; outputs carry the new one"
            )

    def time_jumped(self, what: str) -> None:
        """The node's clock jumped backwards: as a jump of this camera's stamps."""
        self.stream.time_jumped()
        self.clear_pairing(what)

    def clear_pairing(self, what: str) -> None:
        self.recent.clear()
        if self.depth is not None:
            self.depth.clear()
        self.counters.add("time_jumps")
        self.get_logger().warning(
            f"{self.describe()}{what}: cleared the recent frames{' and depth images' if self.depth is not None else ''}; "
            "objects kept, nothing is paired across the jump"
        )

    def on_resolution_change(self, size: tuple[int, int]) -> None:
        """Under :attr:`lock`: carry the objects over to the new size, or reset (per on_resolution_change)."""
        self.counters.add("resolution_changes")
        if resolution_change(
            self.session, size, self.live["on_resolution_change"], self._logged(self.get_logger().warning)
        ):
            self.persistent.clear()
            self.objects_tracked = self.objects_visible = 0

    # diagnostics -------------------------------------------------------------------------------

    @property
    def frames_dropped(self) -> int:
        return self.dropped_before + self.slot.dropped

    def figures(self) -> dict[str, float | int]:
        """This camera's values for the node's diagnostic status (keys: :data:`CAMERA_DIAGNOSTIC_KEYS`)."""
        return {
            "frames_received": self.counters["frames_received"],
            "frames_processed": self.counters["frames_processed"],
            "frames_dropped": self.frames_dropped,
            "input_hz": self.inputs.rate(),
            "output_hz": self.outputs.rate(),
            "latency_ms": self.latency_ms.mean(),
            "model_ms": self.model_ms.mean(),
            "seconds_since_input": time.monotonic() - self.last_input,
            "objects_tracked": self.objects_tracked,
            "objects_visible": self.objects_visible,
            "frame_buffer_mb": self.recent.nbytes() / 1e6,
        }


def pooled(windows: list[SlidingWindow], reduce=None) -> float:
    """The mean (or ``reduce``) of several windows' values together (NaN when all are empty)."""
    values = [v for window in windows for v in window.values()]
    if not values:
        return math.nan
    return reduce(values) if reduce is not None else sum(values) / len(values)
