"""vos_node: segments the objects given once by a label image in every following camera frame.

Inference runs on a worker thread that always takes the newest frame; services, parameters and
the image subscription are served by a multi-threaded executor meanwhile. Every output carries
the input image's header unchanged.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
import warnings

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.msg import SetParametersResult
from rclpy._rclpy_pybind11 import RCLError
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType, JumpThreshold
from rclpy.duration import Duration
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_policy_name_from_kind,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from vos_ros.engine.errors import VosError
from vos_ros.engine.fragments import FragmentFilter
from vos_ros.engine.session import Session
from vos_ros.model import VosNetwork, build_network
from vos_ros.model.backends import make_backend
from vos_ros.ros.allocator import MemoryTrimmer, retain_freed_memory
from vos_ros.ros.compressed import compressed_to_rgb
from vos_ros.ros.continuity import PersistentState, StreamEvent, StreamWatch, resolution_change
from vos_ros.ros.convert import ImageConversionError, image_to_rgb, labels_to_image, mask_to_labels
from vos_ros.ros.depth import DepthError
from vos_ros.ros.depth_fusion import DepthFusion
from vos_ros.ros.diagnostics import DIAGNOSTIC_TASK, Limits, Snapshot, diagnostic_array
from vos_ros.ros.frames import Frame, NewestFrameSlot, RecentFrames
from vos_ros.ros.messages import overlay_messages, tracked_object_array
from vos_ros.ros.parameters import PARAMETERS, SPECS
from vos_ros.ros.prompts import PromptInputs
from vos_ros.ros.spatial_messages import ObjectMarkers, objects_cloud, set_positions
from vos_ros.ros.stamps import format_stamp, stamp_to_ns
from vos_ros.ros.stats import Counters, SlidingWindow
from vos_ros_interfaces.msg import TrackedObjectArray
from vos_ros_interfaces.srv import RemoveObjects, SetInitialMask

NODE_NAME = "vos_node"
IMAGE_TOPIC = "image"  # relative: remap it to the camera topic
DEPTH_TOPIC = "depth"  # registered depth image; remap like the image
CAMERA_INFO_TOPIC = "camera_info"  # of the colour camera
IMAGE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
STATS_SPAN_S = 5.0
FRESH_FRAME_MARGIN = 0.25  # of an input period: how late the next frame may be when waiting for it
WORKER_JOIN_TIMEOUT_S = 30.0


def inference_threads(requested: int) -> int:
    """CPU threads for PyTorch: ``requested``, or 0 for every core but one.

    The spare core keeps DDS and the callbacks from preempting PyTorch's worker threads: with
    all cores given to PyTorch, a 30 Hz camera on a 2-core machine made each frame ten times slower.
    """
    return requested or max(1, len(os.sched_getaffinity(0)) - 1)


class ConfigureError(Exception):
    """A parameter that only configure can check (the weights file) is unusable."""


class VosNode(LifecycleNode):
    """The ROS 2 managed (lifecycle) node around one segmentation session.

    ``configure`` validates the parameters and builds the network (or takes the shared one),
    ``activate`` subscribes to the camera and starts processing, ``deactivate`` stops processing but
    keeps the tracked objects, ``cleanup`` frees the session and the network, ``shutdown`` works from
    any state. With the ``autostart`` parameter (default true) the constructor configures and
    activates. Services, /diagnostics and the parameters are served in every state.

    ``network`` lets several nodes in one process share one network (one per camera); without it
    the node builds its own from the ``config``, ``weights`` and ``device`` parameters on configure.
    ``on_finalized`` is called once the node has been shut down (lifecycle ``shutdown``).
    """

    def __init__(self, network: VosNetwork | None = None, *, on_finalized=None, **node_options):
        super().__init__(NODE_NAME, **node_options)
        self.add_on_set_parameters_callback(self._check_parameters)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, spec.descriptor())
        self._live = {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}
        self.add_post_set_parameters_callback(self._apply_parameters)
        if network is not None and any(
            self._live[name] != SPECS[name].default for name in ("config", "weights", "device", "backend")
        ):
            self.get_logger().warning(
                "a shared network was given: the config, weights, device and backend parameters are unused"
            )
        self._shared_network = network
        self._on_finalized = on_finalized

        # built on configure, released on cleanup
        self._network: VosNetwork | None = None
        self._session: Session | None = None
        self._device = str(network.device) if network is not None else self._live["device"]
        self._depth: DepthFusion | None = None
        self._worker: threading.Thread | None = None
        self._output_pubs: list = []
        self._input_subs: list = []
        self._configure_error = ""
        self._processing = False  # true while active: the worker only runs frames then
        self._activated_at = -float("inf")

        self._session_lock = threading.Lock()
        self._mask_stamp_ns = 0
        self._mask_applied = 0.0
        self._objects_tracked = 0
        self._objects_visible = 0
        # faults (issue 24): tracking state kept on disk across restarts; time jumps and camera changes
        self._persistent = PersistentState(self._live["state_dir"], self.get_logger().info, self.get_logger().warning)
        self._stream = StreamWatch(self._live["max_forward_jump"])
        self._trimmer = MemoryTrimmer(self._live["memory_trim_period"])  # bounds the kept free memory

        self._recent = RecentFrames(self._live["frame_buffer_size"])
        self._slot = NewestFrameSlot()
        self._dropped_before = 0  # frames dropped by the slots of earlier configurations
        self._counters = Counters()
        self._consecutive_failures = 0
        self._last_error = ""
        self._inputs = SlidingWindow(STATS_SPAN_S)
        self._outputs = SlidingWindow(STATS_SPAN_S)
        self._model_ms = SlidingWindow(STATS_SPAN_S)
        self._queue_ms = SlidingWindow(STATS_SPAN_S)
        self._input_delay_ms = SlidingWindow(STATS_SPAN_S)
        self._latency_ms = SlidingWindow(STATS_SPAN_S)
        self._last_input = -float("inf")

        for service in self.services:  # rclpy raises out of the executor for a transition the state lacks
            if service.srv_type is ChangeState:
                service.callback = self._guard_change_state(service.callback)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        services = MutuallyExclusiveCallbackGroup()
        self.create_service(SetInitialMask, "~/set_initial_mask", self._on_set_initial_mask, callback_group=services)
        self.create_service(RemoveObjects, "~/remove_objects", self._on_remove_objects, callback_group=services)
        self.create_service(Trigger, "~/reset", self._on_reset, callback_group=services)
        self._prompt_inputs = PromptInputs(self)  # ~/add_objects and ~/prompts
        self.create_timer(  # steady time: diagnostics keep coming while a simulated /clock pauses
            self._live["diagnostics_period"],
            self._publish_diagnostics,
            callback_group=MutuallyExclusiveCallbackGroup(),
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self._clock_jumps = self.get_clock().create_jump_callback(  # /clock going backwards (use_sim_time)
            JumpThreshold(min_forward=None, min_backward=Duration(nanoseconds=-1), on_clock_change=False),
            post_callback=self._on_clock_jump,
        )

        if self._live["autostart"]:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()
        else:
            self.get_logger().info(
                f"waiting unconfigured (autostart is false): configure and activate with "
                f"{self.get_fully_qualified_name()}/change_state"
            )

    def _guard_change_state(self, change_state):
        """~/change_state answering success=false to a transition the current state does not have."""

        def guarded(request, response):
            try:
                return change_state(request, response)
            except RCLError:
                transition = request.transition.label or str(request.transition.id)
                self.get_logger().warning(
                    f"refusing transition {transition!r}: not possible from {self.lifecycle_state}"
                )
                response.success = False
                return response

        return guarded

    @property
    def lifecycle_state(self) -> str:
        """The label of the current lifecycle state: unconfigured, inactive, active, finalized, ..."""
        return self._state_machine.current_state[1]

    # public hooks: in-process composition and tests ------------------------------------------

    @property
    def session(self) -> Session | None:
        """The tracking session (None while unconfigured)."""
        return self._session

    def count(self, name: str) -> int:
        """One of the node's running counters (frames_received, frames_processed, errors, ...)."""
        return self._counters[name]

    @property
    def input_topics(self) -> list[str]:
        """The topics the node subscribes to while active (image, and depth/camera_info), sorted."""
        return sorted(sub.topic_name for sub in self._input_subs)

    @property
    def processing(self) -> bool:
        """Whether the inference worker runs (configured and active)."""
        return self._worker is not None

    def receive_image(self, msg: Image | CompressedImage) -> None:
        """Hand an image (raw or compressed) to the node as its image subscription does."""
        self._take_frame(msg, compressed_to_rgb if isinstance(msg, CompressedImage) else image_to_rgb)

    def receive_initial_mask(self, request: SetInitialMask.Request) -> SetInitialMask.Response:
        """Call ~/set_initial_mask in process; returns the response the service would send."""
        return self._on_set_initial_mask(request, SetInitialMask.Response())

    # lifecycle ---------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate the parameters, build the network and the session, create the publishers."""
        try:
            problem = SPECS["weights"].problem(self._live["weights"]) if self._shared_network is None else None
            if problem is not None:
                raise ConfigureError(problem)
            network = self._shared_network if self._shared_network is not None else self._build_network()
            session = Session(network, **self._session_options())
        except Exception as error:  # any reason is reported; the node stays unconfigured
            known = isinstance(error, (ConfigureError, VosError))
            self._configure_error = str(error) if known else f"{type(error).__name__}: {error}"
            self.get_logger().error(f"configure failed, staying unconfigured: {self._configure_error}")
            return TransitionCallbackReturn.FAILURE
        self._configure_error = ""
        self._network = network
        self._device = str(network.device)
        with self._session_lock:
            self._session = session
            self._objects_tracked = self._objects_visible = 0
            self._restore_state(network)  # objects kept in state_dir across a restart, if any
        self._consecutive_failures = 0

        overrides = QoSOverridingOptions.with_default_policies()
        self._labels_pub = self.create_lifecycle_publisher(
            Image, "~/labels", OUTPUT_QOS, qos_overriding_options=overrides
        )
        self._objects_pub = self.create_lifecycle_publisher(
            TrackedObjectArray, "~/tracked_objects", OUTPUT_QOS, qos_overriding_options=overrides
        )
        self._overlay_pub = self.create_lifecycle_publisher(
            Image, "~/overlay", OUTPUT_QOS, qos_overriding_options=overrides
        )
        self._overlay_jpeg_pub = self.create_lifecycle_publisher(
            CompressedImage, "~/overlay/compressed", OUTPUT_QOS, qos_overriding_options=overrides
        )
        self._output_pubs = [self._labels_pub, self._objects_pub, self._overlay_pub, self._overlay_jpeg_pub]
        if self._live["use_depth"]:
            self._depth = DepthFusion(self._live["depth_slop"], max_forward_jump_s=self._live["max_forward_jump"])
            self._markers = ObjectMarkers()
            self._cloud_pub = self.create_lifecycle_publisher(
                PointCloud2, "~/objects_cloud", OUTPUT_QOS, qos_overriding_options=overrides
            )
            self._markers_pub = self.create_lifecycle_publisher(MarkerArray, "~/markers", OUTPUT_QOS)
            self._output_pubs += [self._cloud_pub, self._markers_pub]

        self._slot = NewestFrameSlot()
        self._worker = threading.Thread(target=self._work, args=(self._slot,), name="vos-inference", daemon=True)
        self._worker.start()
        self.get_logger().info(f"configured: config {network.config.name!r} on {self._device}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the camera (and depth) and process frames."""
        overrides = QoSOverridingOptions.with_default_policies()
        compressed = self._live["image_transport"] == "compressed"  # then <image>/compressed, as image_transport
        self._image_sub = self.create_subscription(
            CompressedImage if compressed else Image,
            self.resolve_topic_name(IMAGE_TOPIC) + "/compressed" if compressed else IMAGE_TOPIC,
            self._on_compressed_image if compressed else self._on_image,
            IMAGE_QOS,
            callback_group=MutuallyExclusiveCallbackGroup(),
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos),
            qos_overriding_options=overrides,
        )
        self._input_subs = [self._image_sub]
        if self._depth is not None:
            depth_inputs = MutuallyExclusiveCallbackGroup()
            self._depth_sub = self.create_subscription(
                Image,
                DEPTH_TOPIC,
                self._on_depth,
                qos_profile_sensor_data,
                callback_group=depth_inputs,
                qos_overriding_options=overrides,
            )
            self._info_sub = self.create_subscription(
                CameraInfo,
                CAMERA_INFO_TOPIC,
                self._on_camera_info,
                qos_profile_sensor_data,
                callback_group=depth_inputs,
            )
            self._input_subs += [self._depth_sub, self._info_sub]
        self._activated_at = time.monotonic()
        self._processing = True
        result = super().on_activate(state)
        self.get_logger().info(
            f"active: segmenting {self._image_sub.topic_name}; "
            f"give objects with {self.get_fully_qualified_name()}/set_initial_mask"
        )
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop processing (after the frame in progress); the tracked objects are kept."""
        self._stop_processing()
        self.get_logger().info(f"inactive: not processing; keeping objects {self._object_ids()}")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Forget the objects and free the session and the network."""
        self._release()
        self.get_logger().info("cleaned up: the network is released")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """From any state: stop processing, release everything."""
        self._stop_processing()
        self._release()
        self.get_logger().info(f"shut down from {state.label}")
        result = super().on_shutdown(state)
        if self._on_finalized is not None:
            self._on_finalized()
        return result

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: release everything and go back to unconfigured."""
        self.get_logger().error(f"a transition from {state.label} failed: releasing everything")
        self._stop_processing()
        self._release()
        return super().on_error(state)

    def _stop_processing(self) -> None:
        self._processing = False
        for subscription in self._input_subs:
            self.destroy_subscription(subscription)
        self._input_subs = []
        self._slot.discard_older_than(2**63)
        with self._session_lock:  # the frame in progress finishes before this returns
            pass

    def _release(self) -> None:
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=WORKER_JOIN_TIMEOUT_S)
            self._worker = None
        self._dropped_before += self._slot.dropped
        self._slot = NewestFrameSlot()
        for publisher in self._output_pubs:
            self.destroy_lifecycle_publisher(publisher)
        self._output_pubs = []
        with self._session_lock:
            self._session = None
            self._objects_tracked = self._objects_visible = 0
        self._depth = None
        self._recent.clear()
        self._network = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _object_ids(self) -> list[int]:
        with self._session_lock:
            return list(self._session.object_ids) if self._session is not None else []

    def _refusal(self) -> str | None:
        """Why the services cannot act now (None while active)."""
        state = self.lifecycle_state
        if state == "active":
            return None
        return (
            f"{self.get_fully_qualified_name()} is {state}, not active: activate it first "
            f"({self.get_fully_qualified_name()}/change_state)"
        )

    # parameters --------------------------------------------------------------------------------

    def _build_network(self) -> VosNetwork:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.set_num_threads(inference_threads(self._live["torch_threads"]))
            network = build_network(self._live["config"], self._live["weights"] or None, self._live["device"])
            network = make_backend(network, self._live["backend"])
        for warning in caught:
            self.get_logger().warning(str(warning.message))
        return network

    def _check_parameters(self, params) -> SetParametersResult:
        for param in params:
            spec = SPECS.get(param.name)
            problem = spec.problem(param.value, declaring=True) if spec is not None else None
            if problem is not None:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        """Take new values at once; those the session holds reach it before its next frame, so a
        parameter call never waits for the frame in the model."""
        for param in params:
            if param.name not in self._live:
                continue
            self._live[param.name] = param.value
            if param.name == "frame_buffer_size":
                self._recent.resize(param.value)
            elif param.name == "max_forward_jump":
                self._stream.set_max_forward(param.value)
            elif param.name == "memory_trim_period":
                self._trimmer.period_s = param.value

    def _session_options(self) -> dict:
        return {
            "max_objects": self._live["max_objects"],
            "lost_threshold": self._live["lost_threshold"],
            "short_side": self._live["short_side"] or None,
            "fragment_filter": self._fragment_filter(),
        }

    def _fragment_filter(self) -> FragmentFilter | None:
        return FragmentFilter() if self._live["drop_fragments"] else None

    def _update_session_settings(self) -> None:
        """The live lost threshold and fragment filter into the session (under the session lock)."""
        self._session.lost_threshold = self._live["lost_threshold"]
        self._session.fragment_filter = self._fragment_filter()

    # input -------------------------------------------------------------------------------------

    def _warn(self, message: str) -> None:
        self.get_logger().warning(message, throttle_duration_sec=self._live["warn_throttle"])

    def _on_incompatible_qos(self, event) -> None:
        self._warn(
            f"a publisher of {self._image_sub.topic_name} has QoS incompatible with this subscription "
            f"({qos_policy_name_from_kind(event.last_policy_kind)}); its images are not received"
        )

    def _on_image(self, msg: Image) -> None:
        self._take_frame(msg, image_to_rgb)

    def _on_compressed_image(self, msg: CompressedImage) -> None:
        self._take_frame(msg, compressed_to_rgb)

    def _take_frame(self, msg: Image | CompressedImage, decode) -> None:
        self._counters.add("frames_received")
        self._inputs.add()
        self._last_input = time.monotonic()
        try:
            rgb = decode(msg)
        except ImageConversionError as error:
            self._counters.add("bad_frames")
            self._warn(f"dropping an image on {self._image_sub.topic_name}: {error}")
            return
        stamp = stamp_to_ns(msg.header.stamp)
        delay_ms = (self.get_clock().now().nanoseconds - stamp) / 1e6
        event = self._stream.observe(stamp, msg.header.frame_id)
        if event.jump is not None or event.new_frame_id is not None:
            self._on_stream_event(event)
        frame = Frame(header=msg.header, rgb=rgb, stamp_ns=stamp, delay_ms=delay_ms, epoch=self._stream.epoch)
        self._recent.add(frame)
        self._slot.put(frame)

    def _on_depth(self, msg: Image) -> None:
        depth = self._depth
        if depth is None:
            return  # released meanwhile
        try:
            depth.add_depth(msg, stamp_to_ns(msg.header.stamp))
        except DepthError as error:
            self._warn(f"ignoring a depth image on {self._depth_sub.topic_name}: {error}")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        depth = self._depth
        if depth is None:
            return
        try:
            depth.set_camera_info(msg, self._live["camera_geometry"])
        except DepthError as error:
            self._warn(f"refusing CameraInfo on {self._info_sub.topic_name}: {error}")

    # inference ---------------------------------------------------------------------------------

    def _fresher(self, slot: NewestFrameSlot, frame: Frame) -> Frame:
        """``frame``, or the next one when that is due sooner than ``frame`` is old (bounded wait).

        A busy worker finds the newest frame up to one input period old; waiting for a frame due
        in less time than that age gives a smaller stamp-to-labels latency for a short idle time.
        """
        rate = self._inputs.rate()
        if not self._live["fresh_frames"] or rate <= 0:
            return frame
        period = 1.0 / rate
        age = time.monotonic() - frame.received
        due = period - age
        if 0 < due < age:
            return slot.take_newer(frame, due + FRESH_FRAME_MARGIN * period)
        return frame

    def _work(self, slot: NewestFrameSlot) -> None:
        while (frame := slot.take()) is not None:
            try:
                self._process(self._fresher(slot, frame))
            except Exception as error:  # a failing frame never stops the worker
                self._counters.add("errors")
                self._consecutive_failures += 1
                self._last_error = f"{type(error).__name__}: {error}"
                self.get_logger().error(
                    f"processing a frame failed:\n{traceback.format_exc()}",
                    throttle_duration_sec=self._live["warn_throttle"],
                )
            else:
                self._consecutive_failures = 0
            self._trimmer.maybe_trim()  # between frames, at most once per memory_trim_period

    def _process(self, frame: Frame) -> None:
        height, width = frame.rgb.shape[:2]
        with self._session_lock:
            if not self._processing or self._session is None:
                return  # deactivated meanwhile
            if frame.received < self._mask_applied and frame.stamp_ns < self._mask_stamp_ns:
                return  # arrived before a mask for a later frame: tracking has moved past it
            if self._session.initialized and self._session.frame_size != (height, width):
                self._on_resolution_change((height, width))  # carries the objects over, or resets
            if not self._session.initialized:
                result = None
            else:
                self._queue_ms.add((time.monotonic() - frame.received) * 1000.0)
                self._input_delay_ms.add(frame.delay_ms)
                self._update_session_settings()
                try:
                    result = self._session.step(frame.rgb)
                except VosError as error:
                    self._counters.add("bad_frames")
                    self._warn(f"dropping a frame: {error}")
                    return
        if result is None:
            label_map, objects = np.zeros((height, width), np.uint16), []
        else:
            label_map, objects = result.label_map, result.objects
            self._model_ms.add(result.model_ms)
            self._objects_tracked = len(objects)
            self._objects_visible = sum(o.visible for o in objects)
        self._labels_pub.publish(labels_to_image(label_map, frame.header))
        self._latency_ms.add((self.get_clock().now().nanoseconds - frame.stamp_ns) / 1e6)
        objects_msg = tracked_object_array(objects, frame.header)
        if self._depth is not None:
            self._publish_3d(frame, label_map, objects, objects_msg)
        self._objects_pub.publish(objects_msg)
        raw_overlay = self._overlay_pub.get_subscription_count() > 0
        jpeg_overlay = self._overlay_jpeg_pub.get_subscription_count() > 0
        if raw_overlay or jpeg_overlay:
            image, jpeg = overlay_messages(
                frame.rgb,
                label_map,
                self._live["overlay_alpha"],
                frame.header,
                raw=raw_overlay,
                jpeg_quality=self._live["overlay_jpeg_quality"] if jpeg_overlay else None,
            )
            for publisher, msg in ((self._overlay_pub, image), (self._overlay_jpeg_pub, jpeg)):
                if msg is not None:
                    publisher.publish(msg)
            self._counters.add("overlays_published")
        self._counters.add("frames_processed")
        self._outputs.add()

    def _publish_3d(self, frame: Frame, label_map: np.ndarray, objects, objects_msg) -> None:
        """Positions from the paired depth into ``objects_msg``; the cloud (while subscribed) and markers out."""
        want_cloud = self._cloud_pub.get_subscription_count() > 0
        if frame.epoch != self._stream.epoch:  # the stamps jumped since this frame: no depth pairs with it
            set_positions(objects_msg, {})
            return
        located = self._depth.locate(
            frame.stamp_ns,
            label_map,
            [o.id for o in objects if o.visible],
            slop_s=self._live["depth_slop"],
            erosion=self._live["depth_erosion"],
            min_valid=self._live["min_valid_depths"],
            cloud_stride=self._live["cloud_stride"] if want_cloud else None,
        )
        if located.problem is not None:
            self._warn(f"3D outputs are NaN for this frame: {located.problem}")
        positions = located.geometry.positions if located.geometry is not None else {}
        set_positions(objects_msg, positions)
        if want_cloud and located.geometry is not None:
            self._cloud_pub.publish(objects_cloud(located.geometry.points, located.geometry.point_ids, frame.header))
        markers = self._markers.update([(o.id, o.label, positions.get(o.id)) for o in objects], frame.header)
        if markers.markers:
            self._markers_pub.publish(markers)

    # services ----------------------------------------------------------------------------------

    def _on_set_initial_mask(self, request, response):
        response.success = False
        if (refusal := self._refusal()) is not None:
            response.message = refusal
            return response
        try:
            labels = mask_to_labels(request.mask)
        except ImageConversionError as error:
            response.message = f"bad mask image: {error}"
            return response
        wanted = stamp_to_ns(request.mask.header.stamp)
        frame = self._recent.find(wanted)
        if frame is None:
            response.message = (
                f"no recent frame has the mask's stamp {format_stamp(wanted)} s ({self._recent.describe()})"
            )
            return response
        height, width = frame.rgb.shape[:2]
        if labels.shape != (height, width):
            response.message = f"mask is {labels.shape[1]}x{labels.shape[0]} but its frame is {width}x{height}"
            return response
        names = list(request.labels) or None
        with self._session_lock:
            ids = sorted(int(v) for v in np.unique(labels) if v != 0)
            tracked = set(self._session.object_ids)
            if request.append and tracked & set(ids):
                response.message = (
                    f"append: ids {sorted(tracked & set(ids))} are already tracked; remove them first or use "
                    "append=false"
                )
                return response
            try:
                ids = self._session.set_mask(frame.rgb, labels, names, append=request.append)
            except VosError as error:
                response.message = f"mask refused: {error}"
                return response
            self._seeded(frame)
        response.success = True
        response.object_ids = ids
        response.message = f"tracking objects {self._session.object_ids} from stamp {format_stamp(frame.stamp_ns)} s"
        self.get_logger().info(response.message)
        return response

    def _seeded(self, frame: Frame) -> None:
        """Bookkeeping after the session took objects on ``frame`` (called under the session lock)."""
        self._mask_stamp_ns = frame.stamp_ns
        self._mask_applied = time.monotonic()
        self._objects_tracked = len(self._session.object_ids)
        self._persistent.save(self._session)
        self._slot.discard_older_than(frame.stamp_ns)
        self._counters.add("masks_applied")

    def _on_remove_objects(self, request, response):
        if (refusal := self._refusal()) is not None:
            response.success, response.message = False, refusal
            return response
        with self._session_lock:
            try:
                removed = self._session.remove(request.object_ids)
            except VosError as error:
                response.success, response.message = False, str(error)
                return response
            remaining = self._session.object_ids
            self._objects_tracked = len(remaining)
            self._persistent.save(self._session)
        response.success = True
        response.message = f"removed {removed}; tracking {remaining}"
        self.get_logger().info(response.message)
        return response

    def _on_reset(self, request, response):
        if (refusal := self._refusal()) is not None:
            response.success, response.message = False, refusal
            return response
        with self._session_lock:
            forgotten = self._session.object_ids
            self._session.reset()
            self._persistent.clear()
            self._objects_tracked = self._objects_visible = 0
        response.success = True
        response.message = f"forgot objects {forgotten}; waiting for a new mask"
        self.get_logger().info(response.message)
        return response

    # faults (issue 24): restarts, time jumps, camera changes -----------------------------------

    def _restore_state(self, network: VosNetwork) -> None:
        """Continue from the state saved in ``state_dir`` (when set and usable)."""
        restored = self._persistent.restore(lambda state: Session.from_state(network, state, **self._session_options()))
        if restored is not None:
            self._session = restored
            self._objects_tracked = len(restored.object_ids)

    def _on_stream_event(self, event: StreamEvent) -> None:
        """A time jump clears what pairs by stamp (objects stay); a new frame_id is logged once."""
        if event.jump is not None:
            self._clear_pairing(f"{event.jump.describe()} on {self._image_sub.topic_name}")
        if event.new_frame_id is not None:
            self.get_logger().warning(
                f"the frame_id of {self._image_sub.topic_name} changed from {event.new_frame_id[0]!r} to "
                f"{event.new_frame_id[1]!r}; outputs carry the new one"
            )

    def _on_clock_jump(self, jump) -> None:
        """/clock went backwards (a bag loops, a simulator resets): as a jump of the image stamps."""
        self._stream.time_jumped()
        self._clear_pairing(f"/clock jumped backwards by {abs(jump.delta.nanoseconds) / 1e9:.3f} s")

    def _clear_pairing(self, what: str) -> None:
        self._recent.clear()
        if self._depth is not None:
            self._depth.clear()
        self._counters.add("time_jumps")
        self.get_logger().warning(
            f"{what}: cleared the recent frames{' and depth images' if self._depth is not None else ''}; "
            "objects kept, nothing is paired across the jump"
        )

    def _on_resolution_change(self, size: tuple[int, int]) -> None:
        """Under the session lock: carry the objects over to the new size, or reset (per on_resolution_change)."""
        self._counters.add("resolution_changes")
        if resolution_change(self._session, size, self._live["on_resolution_change"], self.get_logger().warning):
            self._persistent.clear()
            self._objects_tracked = self._objects_visible = 0

    # diagnostics -------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The figures /diagnostics reports."""
        return Snapshot(
            device=self._device,
            model_ms=self._model_ms.mean(),
            input_delay_ms=self._input_delay_ms.mean(),
            queue_ms=self._queue_ms.mean(),
            latency_ms=self._latency_ms.mean(),
            latency_max_ms=self._latency_ms.max(),
            input_hz=self._inputs.rate(),
            output_hz=self._outputs.rate(),
            seconds_since_input=time.monotonic() - self._last_input,
            frames_received=self._counters["frames_received"],
            frames_processed=self._counters["frames_processed"],
            frames_dropped=self._dropped_before + self._slot.dropped,
            bad_frames=self._counters["bad_frames"],
            overlays_published=self._counters["overlays_published"],
            objects_tracked=self._objects_tracked,
            objects_visible=self._objects_visible,
            lifecycle_state=self.lifecycle_state,
            configure_error=self._configure_error,
            seconds_without_input_while_active=time.monotonic() - max(self._last_input, self._activated_at)
            if self._processing
            else 0.0,
            model_errors=self._counters["errors"],
            consecutive_failures=self._consecutive_failures,
            last_error=self._last_error,
            time_jumps=self._counters["time_jumps"],
            resolution_changes=self._counters["resolution_changes"],
        )

    def limits(self) -> Limits:
        """The diagnostics thresholds from the live parameters."""
        return Limits(
            input_timeout=self._live["input_timeout"],
            stale_input_s=self._live["stale_input_s"],
            model_failures_error=self._live["model_failures_error"],
            max_drop_rate=self._live["max_drop_rate"],
            max_latency_ms=self._live["max_latency_ms"],
        )

    def status_name(self) -> str:
        """The name of this node's /diagnostics status: ``<fully qualified node name>: segmentation``."""
        return f"{self.get_fully_qualified_name()}: {DIAGNOSTIC_TASK}"

    def _publish_diagnostics(self) -> None:
        self._diagnostics_pub.publish(
            diagnostic_array(
                self.snapshot(),
                self.status_name(),
                self.limits(),
                self.get_clock().now().to_msg(),
            )
        )

    # shutdown ----------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """The lifecycle ``shutdown`` transition unless the node is finalized already."""
        if self.lifecycle_state in ("unconfigured", "inactive", "active"):
            self.trigger_shutdown()

    def destroy_node(self) -> None:
        """Shut down (finishing the frame in progress, joining the worker) and release the node."""
        self.shutdown()
        super().destroy_node()


def _spin(executor: MultiThreadedExecutor, stop: threading.Event) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    finally:
        stop.set()


def main(args=None) -> int:
    """Run vos_node until SIGINT/SIGTERM or its lifecycle shutdown; returns the exit code (1 when its
    parameters are invalid).

    The executor spins on its own thread while the main thread waits, so that shutdown is the same
    orderly sequence however it is asked for: stop the executor, finish the frame in progress, join
    the worker, destroy the node. A failed configure (bad weights path, ...) does not end the
    process: the node stays unconfigured and says why in its log and on /diagnostics.
    """
    retained = retain_freed_memory()  # before the first frame: no per-frame RSS swing (ros/allocator.py)
    stop = threading.Event()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            node = VosNode(on_finalized=stop.set)
        except (ParameterException, VosError, ValueError, OSError) as error:
            rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {error}")
            return 1
        if retained:
            node.get_logger().info(retained)
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)
        spinner = threading.Thread(target=_spin, args=(executor, stop), name="vos-executor")
        spinner.start()
        stop.wait()
        node.get_logger().info("shutting down")
        executor.shutdown(timeout_sec=WORKER_JOIN_TIMEOUT_S)
        spinner.join(timeout=WORKER_JOIN_TIMEOUT_S)
        node.destroy_node()  # shuts down first unless a lifecycle shutdown did
    finally:
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
