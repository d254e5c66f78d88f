"""vos_node: segments the objects given once by a label image in every following camera frame.

Inference runs on a worker thread that always takes the newest frame of each camera; services,
parameters and the image subscriptions are served by a multi-threaded executor meanwhile. Every
output carries the input image's header unchanged.

One node serves one camera (the default, on the historic topic and service names) or several
(the ``cameras`` parameter): each camera is a :class:`~vos_ros.ros.camera.CameraChannel` with its own
inputs, session, services and outputs, all over the node's one network; the frames that several
cameras have waiting at the same time go through the backbone as one batch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor

import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.msg import SetParametersResult
from rclpy._rclpy_pybind11 import RCLError
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType, JumpThreshold
from rclpy.duration import Duration
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image

from vos_ros.engine.errors import VosError
from vos_ros.engine.fragments import FragmentFilter
from vos_ros.engine.session import Session, step_sessions
from vos_ros.model import VosNetwork, build_network
from vos_ros.model.backends import make_backend
from vos_ros.ros.allocator import MemoryTrimmer, retain_freed_memory
from vos_ros.ros.camera import CAMERA_INFO_TOPIC, DEPTH_TOPIC, IMAGE_TOPIC, CameraChannel, pooled
from vos_ros.ros.compressed import compressed_to_rgb
from vos_ros.ros.convert import image_to_rgb
from vos_ros.ros.diagnostics import DIAGNOSTIC_TASK, Limits, Snapshot, diagnostic_array
from vos_ros.ros.frames import Frame, FrameBoard
from vos_ros.ros.parameters import PARAMETERS, SPECS, camera_names_problem
from vos_ros.ros.stats import Counters, SlidingWindow
from vos_ros_interfaces.srv import SetInitialMask

__all__ = ["CAMERA_INFO_TOPIC", "DEPTH_TOPIC", "IMAGE_TOPIC", "NODE_NAME", "VosNode", "main"]

NODE_NAME = "vos_node"
IMAGE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
STATS_SPAN_S = 5.0
InvalidHandle = _rclpy.InvalidHandle  # raised when a destroyed entity is used
FRESH_FRAME_MARGIN = 0.25  # of an input period: how late the next frame may be when waiting for it
WORKER_JOIN_TIMEOUT_S = 30.0
BUSY_CAMERA_POLL_S = 0.005  # with several cameras: how soon the worker looks again when every waiting camera is busy


def inference_threads(requested: int) -> int:
    """CPU threads for PyTorch: ``requested``, or 0 for every core but one.

    The spare core keeps DDS and the callbacks from preempting PyTorch's worker threads: with
    all cores given to PyTorch, a 30 Hz camera on a 2-core machine made each frame ten times slower.
    """
    return requested or max(1, len(os.sched_getaffinity(0)) - 1)


# Python's GIL switch interval while a round's frames step on several threads (default 5 ms).
ROUND_SWITCH_INTERVAL_S = 0.0005


def round_threads(requested: int, cameras: int, device: str, torch_threads: int) -> int:
    """Threads that step one round's frames at once: ``requested``, or 0 for as many as the cores allow
    (cores / torch_threads, at most one per camera) on a CPU and one on a GPU (which batches instead)."""
    if requested:
        return min(requested, cameras)
    if device.startswith("cuda"):
        return 1
    return max(1, min(cameras, len(os.sched_getaffinity(0)) // max(1, torch_threads)))


class ConfigureError(Exception):
    """A parameter that only configure can check (the weights file, the camera names) is unusable."""


class VosNode(LifecycleNode):
    """The ROS 2 managed (lifecycle) node around one segmentation session per camera.

    ``configure`` validates the parameters and builds the network (or takes the shared one) and
    one session per camera, ``activate`` subscribes to the cameras and starts processing,
    ``deactivate`` stops processing but keeps the tracked objects, ``cleanup`` frees the sessions and
    the network, ``shutdown`` works from any state. With the ``autostart`` parameter (default true)
    the constructor configures and activates. Services, /diagnostics and the parameters are served
    in every state.

    ``network`` lets several nodes in one process share one network; without it the node builds its
    own from the ``config``, ``weights`` and ``device`` parameters on configure. (One node with the
    ``cameras`` parameter shares its network between its cameras by itself.) ``on_finalized`` is
    called once the node has been shut down (lifecycle ``shutdown``).
    """

    output_qos = OUTPUT_QOS
    image_qos = IMAGE_QOS

    def __init__(self, network: VosNetwork | None = None, *, on_finalized=None, **node_options):
        super().__init__(NODE_NAME, **node_options)
        self.add_on_set_parameters_callback(self._check_parameters)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, spec.descriptor())
        self._live = {spec.name: self._parameter_value(spec.name) for spec in PARAMETERS}
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
        self._device = str(network.device) if network is not None else self._live["device"]
        self._worker: threading.Thread | None = None
        self._round_pool: ThreadPoolExecutor | None = None  # steps a round's frames at once (camera_threads)
        self._board = FrameBoard(0)
        self._configure_error = ""
        self._processing = False  # true while active: the worker only runs frames then
        self._activated_at = -float("inf")

        self._counters = Counters()  # the node's own (per-camera ones are in each channel)
        self._trimmer = MemoryTrimmer(self._live["memory_trim_period"])  # bounds the kept free memory
        self._consecutive_failures = 0
        self._last_error = ""
        self._batch_ms = SlidingWindow(STATS_SPAN_S)
        self._batch_size = SlidingWindow(STATS_SPAN_S)

        for service in self.services:  # rclpy raises out of the executor for a transition the state lacks
            if service.srv_type is ChangeState:
                service.callback = self._guard_change_state(service.callback)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # one channel per camera (its services exist in every state); none while the names are unusable:
        # configure then fails and says why
        names = self._live["cameras"]
        self._channels: list[CameraChannel] = []
        if camera_names_problem(names) is None:
            self._channels = [CameraChannel(self, name, index) for index, name in enumerate(names or [""])]
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

    def _parameter_value(self, name: str):
        """A declared parameter's value; an unset list (``cameras: []`` in YAML leaves it unset) is its default."""
        value = self.get_parameter(name).value
        if value is None and isinstance(SPECS[name].default, list):
            return list(SPECS[name].default)
        return list(value) if isinstance(SPECS[name].default, list) else value

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
    def cameras(self) -> list[str]:
        """The names of the node's cameras ([""] for the one unnamed camera; [] when the names are unusable)."""
        return [channel.name for channel in self._channels]

    def camera(self, name: str | None = None) -> CameraChannel:
        """One camera's channel by name (None: the first camera; KeyError for an unknown name)."""
        if name is None and self._channels:
            return self._channels[0]
        for channel in self._channels:
            if channel.name == name:
                return channel
        raise KeyError(f"{self.get_fully_qualified_name()} has no camera {name!r}; its cameras: {self.cameras}")

    @property
    def session(self) -> Session | None:
        """The tracking session of the (first) camera (None while unconfigured)."""
        return self._channels[0].session if self._channels else None

    def count(self, name: str) -> int:
        """One of the node's running counters (frames_received, frames_processed, errors, ...), all cameras together."""
        return self._counters[name] + sum(channel.count(name) for channel in self._channels)

    @property
    def input_topics(self) -> list[str]:
        """The topics the node subscribes to while active (images, and depth/camera_info), sorted."""
        return sorted(sub.topic_name for channel in self._channels for sub in channel.input_subs)

    @property
    def processing(self) -> bool:
        """Whether the inference worker runs (configured and active)."""
        return self._worker is not None

    def receive_image(self, msg: Image | CompressedImage, camera: str | None = None) -> None:
        """Hand an image (raw or compressed) to a camera (default: the first) as its image subscription does."""
        self.camera(camera).take_frame(msg, compressed_to_rgb if isinstance(msg, CompressedImage) else image_to_rgb)

    def receive_initial_mask(
        self, request: SetInitialMask.Request, camera: str | None = None
    ) -> SetInitialMask.Response:
        """Call a camera's ~/set_initial_mask in process; returns the response the service would send."""
        return self.camera(camera).on_set_initial_mask(request, SetInitialMask.Response())

    # lifecycle ---------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate the parameters, build the network and one session per camera, create the publishers."""
        try:
            problem = SPECS["cameras"].problem(self._live["cameras"])
            if problem is None and self._shared_network is None:
                problem = SPECS["weights"].problem(self._live["weights"])
            if problem is not None:
                raise ConfigureError(problem)
            network = self._shared_network if self._shared_network is not None else self._build_network()
            options = self._session_options()
            sessions = [channel.make_session(network, options) for channel in self._channels]
        except Exception as error:  # any reason is reported; the node stays unconfigured
            known = isinstance(error, (ConfigureError, VosError))
            self._configure_error = str(error) if known else f"{type(error).__name__}: {error}"
            self.get_logger().error(f"configure failed, staying unconfigured: {self._configure_error}")
            return TransitionCallbackReturn.FAILURE
        self._configure_error = ""
        self._network = network
        self._device = str(network.device)
        self._consecutive_failures = 0
        self._board = FrameBoard(len(self._channels))
        for channel, session, slot in zip(self._channels, sessions, self._board.slots):
            channel.configure(session, slot)
        threads = round_threads(
            self._live["camera_threads"], len(self._channels), self._device, torch.get_num_threads()
        )
        if threads > 1:
            self._round_pool = ThreadPoolExecutor(threads, thread_name_prefix="vos-round")
            # Each tensor op hands the GIL back and takes it again; with Python's default 5 ms switch
            # interval the round's threads queued for it and two cameras answered 3.6 Hz, with 0.5 ms 8.9 Hz
            # (two separate nodes: 9.9 Hz; one camera is the same either way). Process-wide, so only here.
            sys.setswitchinterval(min(sys.getswitchinterval(), ROUND_SWITCH_INTERVAL_S))
        self._worker = threading.Thread(target=self._work, args=(self._board,), name="vos-inference", daemon=True)
        self._worker.start()
        cameras = f" for cameras {self.cameras}" if self.cameras != [""] else ""
        self.get_logger().info(f"configured: config {network.config.name!r} on {self._device}{cameras}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Subscribe to the cameras (and depth) and process frames."""
        for channel in self._channels:
            channel.activate()
        self._activated_at = time.monotonic()
        self._processing = True
        result = super().on_activate(state)
        topics = ", ".join(channel.image_sub.topic_name for channel in self._channels)
        services = ", ".join(
            f"{self.get_fully_qualified_name()}/{channel.private('set_initial_mask')[2:]}" for channel in self._channels
        )
        self.get_logger().info(f"active: segmenting {topics}; give objects with {services}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop processing (after the frame in progress); the tracked objects are kept."""
        self._stop_processing()
        kept = "; ".join(f"{channel.describe()}{channel.object_ids}" for channel in self._channels)
        self.get_logger().info(f"inactive: not processing; keeping objects {kept}")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Forget the objects and free the sessions and the network."""
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
        for channel in self._channels:
            channel.stop()

    def _release(self) -> None:
        self._board.close()
        if self._worker is not None:
            self._worker.join(timeout=WORKER_JOIN_TIMEOUT_S)
            self._worker = None
        if self._round_pool is not None:
            self._round_pool.shutdown(wait=True)
            self._round_pool = None
        for channel in self._channels:
            channel.release()
        self._board = FrameBoard(0)
        self._network = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

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
            value = None if param.type_ == Parameter.Type.NOT_SET else param.value
            problem = spec.problem(value, declaring=True) if spec is not None else None
            if problem is not None:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        """Take new values at once; those the sessions hold reach them before their next frame, so a
        parameter call never waits for the frame in the model."""
        for param in params:
            if param.name not in self._live:
                continue
            self._live[param.name] = param.value
            if param.name == "memory_trim_period":
                self._trimmer.period_s = param.value
            for channel in self._channels:
                if param.name == "frame_buffer_size":
                    channel.recent.resize(param.value)
                elif param.name == "max_forward_jump":
                    channel.stream.set_max_forward(param.value)

    def _session_options(self) -> dict:
        return {
            "max_objects": self._live["max_objects"],
            "lost_threshold": self._live["lost_threshold"],
            "short_side": self._live["short_side"] or None,
            "fragment_filter": self._fragment_filter(),
        }

    def _fragment_filter(self) -> FragmentFilter | None:
        return FragmentFilter() if self._live["drop_fragments"] else None

    def _warn(self, message: str) -> None:
        self.get_logger().warning(message, throttle_duration_sec=self._live["warn_throttle"])

    # inference ---------------------------------------------------------------------------------

    def _fresher(self, channel: CameraChannel, frame: Frame) -> Frame:
        """``frame``, or the next one when that is due sooner than ``frame`` is old (bounded wait).

        A busy worker finds the newest frame up to one input period old; waiting for a frame due
        in less time than that age gives a smaller stamp-to-labels latency for a short idle time.
        Only for a node with one camera: with several, waiting for one camera would delay the others.
        """
        rate = channel.inputs.rate()
        if not self._live["fresh_frames"] or rate <= 0 or len(self._channels) != 1:
            return frame
        period = 1.0 / rate
        age = time.monotonic() - frame.received
        due = period - age
        if 0 < due < age:
            return channel.slot.take_newer(frame, due + FRESH_FRAME_MARGIN * period)
        return frame

    def _work(self, board: FrameBoard) -> None:
        """Take the frames every camera has waiting (newest per camera) and run them as one batch."""
        while (taken := board.take_waiting()) is not None:
            batch = [(self._channels[index], frame) for index, frame in taken]
            if len(batch) == 1:
                batch = [(batch[0][0], self._fresher(*batch[0]))]
            try:
                self._process(batch)
            except Exception as error:  # a failing frame never stops the worker
                for channel, _ in batch:
                    channel.counters.add("errors")
                self._consecutive_failures += 1
                self._last_error = f"{type(error).__name__}: {error}"
                self.get_logger().error(
                    f"processing a frame failed:\n{traceback.format_exc()}",
                    throttle_duration_sec=self._live["warn_throttle"],
                )
            else:
                self._consecutive_failures = 0
            self._trimmer.maybe_trim()  # between frames, at most once per memory_trim_period

    def _process(self, batch: list[tuple[CameraChannel, Frame]]) -> None:
        """One batch: each camera's checks under its lock, one batched step of the frames that need the
        network, then each camera's outputs (outside the locks).

        With several cameras, a camera whose lock a service holds (a mask being encoded, a prompt) is not
        waited for: its frame goes back to its slot (a newer one wins) and the other cameras go on; when
        every camera of the batch is busy the worker looks again after ``BUSY_CAMERA_POLL_S``. One camera
        waits for its lock, as there is nothing else to do."""
        outputs = []
        deferred = []
        with contextlib.ExitStack() as locks:
            ready = []
            for channel, frame in batch:  # in camera order; services take one lock at a time
                if len(self._channels) == 1:
                    locks.enter_context(channel.lock)
                elif not channel.lock.acquire(blocking=False):
                    deferred.append((channel, frame))
                    continue
                else:
                    locks.callback(channel.lock.release)
                ready.append((channel, frame))
            stepping = []
            for channel, frame in ready:
                verdict = channel.prepare(frame)
                if verdict == "empty":
                    outputs.append((channel, frame, None))
                elif verdict == "step":
                    stepping.append((channel, frame))
            for (channel, frame), result in zip(stepping, self._step(stepping)):
                if channel.finish(result):
                    outputs.append((channel, frame, result))
        for channel, frame, result in sorted(outputs, key=lambda item: item[0].index):
            channel.publish(frame, result)
        for channel, frame in deferred:
            channel.counters.add("frames_deferred")
            channel.slot.restore(frame)
        if deferred and len(deferred) == len(batch):
            time.sleep(BUSY_CAMERA_POLL_S)

    def _step(self, stepping: list[tuple[CameraChannel, Frame]]) -> list:
        """The sessions' results (or VosError) for the frames the cameras had waiting: in batches of at most
        ``max_batch`` (0: all in one batch on a GPU, one by one on a CPU), each through the backbone at once;
        the batches run on the round's threads (``camera_threads``) when there are several."""
        if not stepping:
            return []
        started = time.perf_counter()
        size = self._live["max_batch"] or (len(stepping) if self._device.startswith("cuda") else 1)
        batches = [stepping[start : start + size] for start in range(0, len(stepping), size)]
        pool = self._round_pool
        if pool is not None and len(batches) > 1:
            parts = list(pool.map(self._step_batch, batches))
        else:
            parts = [self._step_batch(batch) for batch in batches]
        results = [result for part in parts for result in part]
        self._batch_ms.add((time.perf_counter() - started) * 1000.0)
        self._batch_size.add(len(stepping))
        return results

    @staticmethod
    def _step_batch(batch: list[tuple[CameraChannel, Frame]]) -> list:
        if len(batch) == 1:
            channel, frame = batch[0]
            try:
                return [channel.session.step(frame.rgb)]
            except VosError as error:
                return [error]
        return step_sessions([channel.session for channel, _ in batch], [frame.rgb for _, frame in batch])

    # faults (issue 24): time jumps ------------------------------------------------------------

    def _on_clock_jump(self, jump) -> None:
        """/clock went backwards (a bag loops, a simulator resets): as a jump of every camera's stamps."""
        for channel in self._channels:
            channel.time_jumped(f"/clock jumped backwards by {abs(jump.delta.nanoseconds) / 1e9:.3f} s")

    # diagnostics -------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The figures /diagnostics reports, all cameras together (see :meth:`camera_values` for each camera's)."""
        channels = self._channels
        now = time.monotonic()
        quietest = min(channels, key=lambda c: c.last_input, default=None)
        last_input = quietest.last_input if quietest is not None else -float("inf")

        def total(name: str) -> int:
            return sum(c.counters[name] for c in channels)

        return Snapshot(
            device=self._device,
            model_ms=pooled([c.model_ms for c in channels]),
            input_delay_ms=pooled([c.input_delay_ms for c in channels]),
            queue_ms=pooled([c.queue_ms for c in channels]),
            latency_ms=pooled([c.latency_ms for c in channels]),
            latency_max_ms=pooled([c.latency_ms for c in channels], max),
            input_hz=sum(c.inputs.rate() for c in channels),
            output_hz=sum(c.outputs.rate() for c in channels),
            seconds_since_input=now - last_input,
            frames_received=total("frames_received"),
            frames_processed=total("frames_processed"),
            frames_dropped=sum(c.frames_dropped for c in channels),
            bad_frames=total("bad_frames"),
            overlays_published=total("overlays_published"),
            objects_tracked=sum(c.objects_tracked for c in channels),
            objects_visible=sum(c.objects_visible for c in channels),
            lifecycle_state=self.lifecycle_state,
            configure_error=self._configure_error,
            seconds_without_input_while_active=now - max(last_input, self._activated_at) if self._processing else 0.0,
            model_errors=self.count("errors"),
            consecutive_failures=self._consecutive_failures,
            last_error=self._last_error,
            time_jumps=total("time_jumps"),
            resolution_changes=total("resolution_changes"),
            quietest_camera=quietest.name if quietest is not None and len(channels) > 1 else "",
            frame_buffer_mb=sum(c.recent.nbytes() for c in channels) / 1e6,
        )

    def camera_values(self) -> list[tuple[str, object]]:
        """With several cameras, the further /diagnostics values: the camera names, the batched step's time
        and size, and each camera's figures as ``<camera>/<key>`` (none for one camera)."""
        if len(self._channels) < 2:
            return []
        values: list[tuple[str, object]] = [
            ("cameras", ",".join(self.cameras)),
            ("batch_ms", self._batch_ms.mean()),
            ("batch_size", self._batch_size.mean()),
        ]
        for channel in self._channels:
            values += [(f"{channel.name}/{key}", value) for key, value in channel.figures().items()]
        return values

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
                tuple(self.camera_values()),
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


def spin(executor, logger=None) -> None:
    """``executor.spin()`` until the context shuts down, carrying on past rclpy's ``InvalidHandle`` race:
    a subscription destroyed (lifecycle deactivate, a camera stopping) after another executor thread had
    taken it raises in the spinning thread (ros2/rclpy#1206, #1355), which would otherwise end the
    executor, so that nothing is served any more: no frames, services or /diagnostics."""
    while True:
        try:
            executor.spin()
            return
        except InvalidHandle as error:
            if logger is not None:
                logger.warning(f"an entity was destroyed while in use, executor continues: {error}")


def _spin(executor: MultiThreadedExecutor, stop: threading.Event, logger) -> None:
    try:
        spin(executor, logger)
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
        spinner = threading.Thread(target=_spin, args=(executor, stop, node.get_logger()), name="vos-executor")
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
