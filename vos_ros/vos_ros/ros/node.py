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
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
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
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from vos_ros.engine.errors import VosError
from vos_ros.engine.fragments import FragmentFilter
from vos_ros.engine.session import Session
from vos_ros.model import VosNetwork, build_network
from vos_ros.ros.convert import ImageConversionError, image_to_rgb, labels_to_image, mask_to_labels
from vos_ros.ros.depth import DepthError
from vos_ros.ros.depth_fusion import DepthFusion
from vos_ros.ros.diagnostics import Snapshot, diagnostic_array
from vos_ros.ros.frames import Frame, NewestFrameSlot, RecentFrames
from vos_ros.ros.messages import overlay_image, tracked_object_array
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


class VosNode(Node):
    """The ROS 2 node around one segmentation session.

    ``network`` lets several nodes in one process share one network (one per camera); without it
    the node builds its own from the ``config``, ``weights`` and ``device`` parameters.
    """

    def __init__(self, network: VosNetwork | None = None, **node_options):
        super().__init__(NODE_NAME, **node_options)
        self.add_on_set_parameters_callback(self._check_parameters)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, spec.descriptor())
        self._live = {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}
        self.add_post_set_parameters_callback(self._apply_parameters)

        if network is None:
            network = self._build_network()
        elif any(self._live[name] != SPECS[name].default for name in ("config", "weights", "device")):
            self.get_logger().warning(
                "a shared network was given: the config, weights and device parameters are unused"
            )
        self._device = str(network.device)
        self._session = Session(
            network,
            max_objects=self._live["max_objects"],
            lost_threshold=self._live["lost_threshold"],
            short_side=self._live["short_side"] or None,
            fragment_filter=self._fragment_filter(),
        )
        self._session_lock = threading.Lock()
        self._mask_stamp_ns = 0
        self._mask_applied = 0.0
        self._mask_size: tuple[int, int] | None = None
        self._objects_tracked = 0
        self._objects_visible = 0

        self._recent = RecentFrames(self._live["frame_buffer_size"])
        self._slot = NewestFrameSlot()
        self._counters = Counters()
        self._inputs = SlidingWindow(STATS_SPAN_S)
        self._outputs = SlidingWindow(STATS_SPAN_S)
        self._model_ms = SlidingWindow(STATS_SPAN_S)
        self._queue_ms = SlidingWindow(STATS_SPAN_S)
        self._input_delay_ms = SlidingWindow(STATS_SPAN_S)
        self._latency_ms = SlidingWindow(STATS_SPAN_S)
        self._last_input = -float("inf")

        overrides = QoSOverridingOptions.with_default_policies()
        self._labels_pub = self.create_publisher(Image, "~/labels", OUTPUT_QOS, qos_overriding_options=overrides)
        self._objects_pub = self.create_publisher(
            TrackedObjectArray, "~/tracked_objects", OUTPUT_QOS, qos_overriding_options=overrides
        )
        self._overlay_pub = self.create_publisher(Image, "~/overlay", OUTPUT_QOS, qos_overriding_options=overrides)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        self._image_sub = self.create_subscription(
            Image,
            IMAGE_TOPIC,
            self._on_image,
            IMAGE_QOS,
            callback_group=MutuallyExclusiveCallbackGroup(),
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos),
            qos_overriding_options=overrides,
        )
        self._depth = DepthFusion(self._live["depth_slop"]) if self._live["use_depth"] else None
        if self._depth is not None:
            self._markers = ObjectMarkers()
            self._cloud_pub = self.create_publisher(
                PointCloud2, "~/objects_cloud", OUTPUT_QOS, qos_overriding_options=overrides
            )
            self._markers_pub = self.create_publisher(MarkerArray, "~/markers", OUTPUT_QOS)
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

        self._worker = threading.Thread(target=self._work, name="vos-inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"segmenting {self._image_sub.topic_name} with config {network.config.name!r} on {self._device}; "
            f"give objects with {self.get_fully_qualified_name()}/set_initial_mask"
        )

    # parameters --------------------------------------------------------------------------------

    def _build_network(self) -> VosNetwork:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.set_num_threads(inference_threads(self._live["torch_threads"]))
            network = build_network(self._live["config"], self._live["weights"] or None, self._live["device"])
        for warning in caught:
            self.get_logger().warning(str(warning.message))
        return network

    def _check_parameters(self, params) -> SetParametersResult:
        for param in params:
            spec = SPECS.get(param.name)
            problem = spec.problem(param.value) if spec is not None else None
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
        self._counters.add("frames_received")
        self._inputs.add()
        self._last_input = time.monotonic()
        try:
            rgb = image_to_rgb(msg)
        except ImageConversionError as error:
            self._counters.add("bad_frames")
            self._warn(f"dropping an image on {self._image_sub.topic_name}: {error}")
            return
        stamp = stamp_to_ns(msg.header.stamp)
        delay_ms = (self.get_clock().now().nanoseconds - stamp) / 1e6
        frame = Frame(header=msg.header, rgb=rgb, stamp_ns=stamp, delay_ms=delay_ms)
        self._recent.add(frame)
        self._slot.put(frame)

    def _on_depth(self, msg: Image) -> None:
        try:
            self._depth.add_depth(msg, stamp_to_ns(msg.header.stamp))
        except DepthError as error:
            self._warn(f"ignoring a depth image on {self._depth_sub.topic_name}: {error}")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._depth.set_camera_info(msg)
        except DepthError as error:
            self._warn(f"refusing CameraInfo on {self._info_sub.topic_name}: {error}")

    # inference ---------------------------------------------------------------------------------

    def _fresher(self, frame: Frame) -> Frame:
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
            return self._slot.take_newer(frame, due + FRESH_FRAME_MARGIN * period)
        return frame

    def _work(self) -> None:
        while (frame := self._slot.take()) is not None:
            try:
                self._process(self._fresher(frame))
            except Exception:
                self._counters.add("errors")
                self.get_logger().error(
                    f"processing a frame failed:\n{traceback.format_exc()}",
                    throttle_duration_sec=self._live["warn_throttle"],
                )

    def _process(self, frame: Frame) -> None:
        height, width = frame.rgb.shape[:2]
        with self._session_lock:
            if frame.received < self._mask_applied and frame.stamp_ns < self._mask_stamp_ns:
                return  # arrived before a mask for a later frame: tracking has moved past it
            if not self._session.initialized:
                result = None
            elif self._mask_size != (height, width):
                self._counters.add("bad_frames")
                self._warn(
                    f"dropping a {width}x{height} frame: objects were given on a "
                    f"{self._mask_size[1]}x{self._mask_size[0]} frame (send a new mask after a size change)"
                )
                return
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
        if self._overlay_pub.get_subscription_count() > 0:
            self._overlay_pub.publish(overlay_image(frame.rgb, label_map, self._live["overlay_alpha"], frame.header))
            self._counters.add("overlays_published")
        self._counters.add("frames_processed")
        self._outputs.add()

    def _publish_3d(self, frame: Frame, label_map: np.ndarray, objects, objects_msg) -> None:
        """Positions from the paired depth into ``objects_msg``; the cloud (while subscribed) and markers out."""
        want_cloud = self._cloud_pub.get_subscription_count() > 0
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
        self._mask_size = frame.rgb.shape[:2]
        self._objects_tracked = len(self._session.object_ids)
        self._slot.discard_older_than(frame.stamp_ns)
        self._counters.add("masks_applied")

    def _on_remove_objects(self, request, response):
        with self._session_lock:
            try:
                removed = self._session.remove(request.object_ids)
            except VosError as error:
                response.success, response.message = False, str(error)
                return response
            remaining = self._session.object_ids
            self._objects_tracked = len(remaining)
        response.success = True
        response.message = f"removed {removed}; tracking {remaining}"
        self.get_logger().info(response.message)
        return response

    def _on_reset(self, request, response):
        with self._session_lock:
            forgotten = self._session.object_ids
            self._session.reset()
            self._mask_size = None
            self._objects_tracked = self._objects_visible = 0
        response.success = True
        response.message = f"forgot objects {forgotten}; waiting for a new mask"
        self.get_logger().info(response.message)
        return response

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
            frames_dropped=self._slot.dropped,
            bad_frames=self._counters["bad_frames"],
            overlays_published=self._counters["overlays_published"],
            objects_tracked=self._objects_tracked,
            objects_visible=self._objects_visible,
        )

    def _publish_diagnostics(self) -> None:
        self._diagnostics_pub.publish(
            diagnostic_array(
                self.snapshot(),
                f"{self.get_fully_qualified_name()}: video object segmentation",
                self._live["input_timeout"],
                self.get_clock().now().to_msg(),
            )
        )

    # shutdown ----------------------------------------------------------------------------------

    def destroy_node(self) -> None:
        """Stop the worker (after the frame in progress) and release the node."""
        self._slot.close()
        self._worker.join(timeout=WORKER_JOIN_TIMEOUT_S)
        super().destroy_node()


def _spin(executor: MultiThreadedExecutor, stop: threading.Event) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    finally:
        stop.set()


def main(args=None) -> int:
    """Run vos_node until SIGINT/SIGTERM; returns the exit code (1 when it cannot start).

    The executor spins on its own thread while the main thread waits for a signal, so that
    shutdown is the same orderly sequence however it is asked for: stop the executor, finish the
    frame in progress, join the worker, destroy the node.
    """
    stop = threading.Event()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            node = VosNode()
        except (ParameterException, VosError, ValueError, OSError) as error:
            rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {error}")
            return 1
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)
        spinner = threading.Thread(target=_spin, args=(executor, stop), name="vos-executor")
        spinner.start()
        stop.wait()
        node.get_logger().info("shutting down")
        executor.shutdown(timeout_sec=WORKER_JOIN_TIMEOUT_S)
        spinner.join(timeout=WORKER_JOIN_TIMEOUT_S)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
