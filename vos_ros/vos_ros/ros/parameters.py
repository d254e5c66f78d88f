"""The node's parameters: defaults, descriptions, ranges and validation in one table."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from vos_ros.model import CONFIGS, DEFAULT_CONFIG
from vos_ros.model.backends import BACKENDS
from vos_ros.model.configs import MIN_SHORT_SIDE
from vos_ros.ros.continuity import RESOLUTION_CHANGE_CHOICES

CONFIG_NAMES = tuple(CONFIGS)
CAMERA_GEOMETRIES = ("raw", "rectified")

IMAGE_TRANSPORTS = ("raw", "compressed")
PROMPT_POLICIES = ("add_new", "refresh")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_CAMERA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # one ROS name token: topics <camera>/image, ~/<camera>/...


def _config_name(value: str) -> str | None:
    return None if value in CONFIG_NAMES else f"unknown config {value!r} (choose one of {', '.join(CONFIG_NAMES)})"


def _weights_path(value: str) -> str | None:
    if value and not os.path.isfile(value):
        return f"weights file {value!r} does not exist"
    return None


def _short_side(value: int) -> str | None:
    if 0 < value < MIN_SHORT_SIDE:
        return f"short_side {value} is too small: use 0 (the config's own) or at least {MIN_SHORT_SIDE}"
    return None


def _one_of(name: str, choices: tuple[str, ...]):
    """The check of a string parameter that takes one of ``choices``."""

    def check(value: str) -> str | None:
        return None if value in choices else f"{name} {value!r} is not one of {', '.join(choices)}"

    return check


def _device(value: str) -> str | None:
    return None if _DEVICE.match(value) else f"device {value!r} is not auto, cpu, cuda or cuda:N"


def camera_names_problem(names: list[str]) -> str | None:
    """Why ``names`` cannot name the cameras of one node (None when they can): each must be one ROS name
    token (a letter, then letters, digits and single underscores), and no name may repeat."""
    for index, name in enumerate(names):
        if not isinstance(name, str):
            return f"cameras[{index}] is {name!r}, not a name: give the camera names as strings"
        if not name:
            return f"cameras[{index}] is empty: every camera needs a name (or give no cameras for one unnamed camera)"
        if not _CAMERA_NAME.match(name) or "__" in name:
            return (
                f"cameras[{index}] {name!r} is not a valid ROS name token: use a letter, then letters, digits "
                "and single underscores (it becomes <camera>/image and ~/<camera>/labels)"
            )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        return f"cameras {names} name {', '.join(repeated)} more than once: every camera needs its own name"
    return None


def _camera_names(value: list) -> str | None:
    return camera_names_problem(list(value))


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter. ``read_only`` marks values that only take effect on a restart.

    ``on_configure`` marks a check that configure makes rather than the parameter declaration (a bad
    weights path fails the lifecycle configure transition; the node stays up, unconfigured).
    """

    name: str
    default: bool | int | float | str | list[str]
    description: str
    read_only: bool = False
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    check: Callable[[str], str | None] | None = None
    on_configure: bool = False

    def descriptor(self) -> ParameterDescriptor:
        """The ROS descriptor (description, range, read-only flag) of this parameter."""
        desc = ParameterDescriptor(name=self.name, description=self.description, read_only=self.read_only)
        # ROS types an empty list as a byte array, so a string array declared empty could never be given
        # names: it is declared dynamically typed, and ``problem`` checks the type instead
        desc.dynamic_typing = isinstance(self.default, list)
        if self.int_range is not None:
            desc.integer_range = [IntegerRange(from_value=self.int_range[0], to_value=self.int_range[1], step=1)]
        if self.float_range is not None:
            desc.floating_point_range = [
                FloatingPointRange(from_value=self.float_range[0], to_value=self.float_range[1], step=0.0)
            ]
        return desc

    def problem(self, value, *, declaring: bool = False) -> str | None:
        """Why ``value`` is not acceptable for this parameter, or None when it is. ``declaring``
        leaves out a check that configure makes (``on_configure``). A string array left unset is its
        default (None, as ROS reports it)."""
        if value is None and isinstance(self.default, list):
            return None
        if isinstance(self.default, list) and isinstance(value, (list, tuple)):
            value = list(value)
        if type(value) is not type(self.default):
            return f"{self.name} must be of type {type(self.default).__name__}, got {type(value).__name__}"
        if self.int_range is not None and not self.int_range[0] <= value <= self.int_range[1]:
            return f"{self.name}={value} is outside [{self.int_range[0]}, {self.int_range[1]}]"
        if self.float_range is not None and not self.float_range[0] <= value <= self.float_range[1]:
            return f"{self.name}={value} is outside [{self.float_range[0]}, {self.float_range[1]}]"
        if self.check is not None and not (declaring and self.on_configure):
            return self.check(value)
        return None


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "cameras",
        [],
        "Names of the cameras this node serves with one network, e.g. [front, rear]: camera c reads c/image "
        "(c/depth, c/camera_info) and has its own objects, ~/c/... services and ~/c/... outputs; frames of "
        "several cameras go through the network as one batch. Empty (unset): one camera on today's names.",
        read_only=True,
        check=_camera_names,
        on_configure=True,
    ),
    ParamSpec(
        "max_batch",
        0,
        "With several cameras: most frames in one backbone call; the frames of more cameras waiting at once go "
        "through in further calls of the same round. 0: all of them in one batch on a GPU, one at a time on a CPU "
        "(where a batch was no faster than its frames one by one and its activations add to the memory per frame).",
        int_range=(0, 64),
    ),
    ParamSpec(
        "camera_threads",
        0,
        "With several cameras on a CPU: the batches of one round run on up to this many threads at once "
        "(PyTorch and ONNX Runtime release the GIL), so N cameras use the cores N processes would. "
        "0: as many as the cores allow (cores / torch_threads, at most one per camera); a GPU runs one.",
        read_only=True,
        int_range=(0, 64),
    ),
    ParamSpec(
        "autostart",
        True,
        "Configure and activate the (lifecycle) node when it starts; false: it waits unconfigured for "
        "the configure and activate transitions (~/change_state, a lifecycle manager).",
        read_only=True,
    ),
    ParamSpec(
        "config", DEFAULT_CONFIG, f"Network config: {', '.join(CONFIG_NAMES)}.", read_only=True, check=_config_name
    ),
    ParamSpec(
        "weights",
        "",
        "Checkpoint file for the config; empty selects its default weights.",
        read_only=True,
        check=_weights_path,
        on_configure=True,
    ),
    ParamSpec(
        "device",
        "auto",
        "Inference device: auto (CUDA when available), cpu, cuda or cuda:N.",
        read_only=True,
        check=_device,
    ),
    ParamSpec(
        "backend",
        "torch",
        "Inference backend: torch, onnxruntime or openvino (the last two run graphs exported from the weights "
        "at start-up; CPU only).",
        read_only=True,
        check=_one_of("backend", BACKENDS),
    ),
    ParamSpec(
        "short_side",
        0,
        "Short side in pixels that frames are resized to for the network; 0 uses the config's own.",
        read_only=True,
        int_range=(0, 4096),
        check=_short_side,
    ),
    ParamSpec(
        "torch_threads",
        0,
        "CPU threads for PyTorch; 0: every core but one (kept for DDS and callbacks).",
        read_only=True,
        int_range=(0, 256),
    ),
    ParamSpec("max_objects", 64, "Most objects tracked at once.", read_only=True, int_range=(1, 65535)),
    ParamSpec("lost_threshold", 0.3, "Object score below which an object is reported LOST.", float_range=(0.0, 1.0)),
    ParamSpec(
        "drop_fragments",
        True,
        "Drop the small detached pieces of an object that appear away from where it "
        "was in the previous frame (look-alikes), so that they are neither published nor tracked.",
    ),
    ParamSpec(
        "image_transport",
        "raw",
        "How the colour image arrives: raw (sensor_msgs/Image on image) or compressed "
        "(sensor_msgs/CompressedImage, JPEG or PNG, on <image>/compressed).",
        read_only=True,
        check=_one_of("image_transport", IMAGE_TRANSPORTS),
    ),
    ParamSpec("overlay_alpha", 0.5, "Opacity of the object colours in ~/overlay.", float_range=(0.0, 1.0)),
    ParamSpec(
        "overlay_jpeg_quality",
        80,
        "JPEG quality (1-100) of ~/overlay/compressed, published only while subscribed.",
        int_range=(1, 100),
    ),
    ParamSpec(
        "frame_buffer_size",
        30,
        "Recent frames kept so that ~/set_initial_mask can find the frame of a mask's stamp.",
        int_range=(1, 1000),
    ),
    ParamSpec(
        "fresh_frames",
        True,
        "When inference finds a frame that waited more than half an input period, "
        "wait up to about half a period for the next frame instead: fresher outputs for a few percent of "
        "throughput.",
    ),
    ParamSpec(
        "diagnostics_period", 1.0, "Seconds between /diagnostics messages.", read_only=True, float_range=(0.1, 60.0)
    ),
    ParamSpec(
        "input_timeout",
        2.0,
        "Seconds without an input frame after which diagnostics report a warning.",
        float_range=(0.1, 3600.0),
    ),
    ParamSpec(
        "stale_input_s",
        5.0,
        "Seconds without an input image while active after which diagnostics report an error.",
        float_range=(0.1, 3600.0),
    ),
    ParamSpec(
        "model_failures_error",
        3,
        "Consecutive frames failing in the model after which diagnostics report an error (with the last "
        "exception's message).",
        int_range=(1, 1_000_000),
    ),
    ParamSpec(
        "max_drop_rate",
        1.0,
        "Fraction of the input frames left unprocessed (last 5 s) above which diagnostics warn; 1.0 never "
        "warns (the node drops frames by design when the camera is faster than the model).",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "max_latency_ms",
        1000.0,
        "Mean input stamp -> labels latency (last 5 s, milliseconds) above which diagnostics warn.",
        float_range=(0.0, 1e6),
    ),
    ParamSpec(
        "warn_throttle", 5.0, "Least seconds between repeated warnings about bad input.", float_range=(0.0, 3600.0)
    ),
    ParamSpec(
        "use_depth",
        True,
        "Subscribe to depth (registered to the image: 16UC1 mm or 32FC1 m) and "
        "camera_info (of the colour camera) for 3D positions, ~/objects_cloud and ~/markers.",
        read_only=True,
    ),
    ParamSpec(
        "depth_slop",
        0.02,
        "Most seconds between the stamps of a frame and the depth image paired with it.",
        float_range=(0.0, 1.0),
    ),
    ParamSpec(
        "depth_erosion",
        2,
        "Pixels eroded from each object's mask before its depths are used, so that "
        "background depth at the silhouette stays out.",
        int_range=(0, 50),
    ),
    ParamSpec(
        "min_valid_depths",
        20,
        "Fewest valid depths under an object's eroded mask for a 3D position (NaN otherwise).",
        int_range=(1, 1_000_000),
    ),
    ParamSpec("cloud_stride", 2, "Pixel stride of the object points in ~/objects_cloud.", int_range=(1, 64)),
    ParamSpec(
        "camera_geometry",
        "raw",
        "How pixels are back-projected to 3D from camera_info: raw (K and the distortion D: for images as "
        "the camera sends them, *image_raw; the same as K when D is zero) or rectified (the projection P: "
        "for rectified images, *image_rect*).",
        check=_one_of("camera_geometry", CAMERA_GEOMETRIES),
    ),
    ParamSpec(
        "state_dir",
        "",
        "Directory where the tracking state (anchors, objects, labels, ages) is kept across restarts, "
        "written atomically when the objects change; empty: no state is kept.",
        read_only=True,
    ),
    ParamSpec(
        "max_forward_jump",
        10.0,
        "Seconds between consecutive image stamps above which time is taken to have jumped forwards "
        "(backwards always counts): recent frames and depth images are cleared, objects kept; 0: never.",
        float_range=(0.0, 1e9),
    ),
    ParamSpec(
        "memory_trim_period",
        60.0,
        "Seconds between returns of the heap's free pages to the system (malloc_trim, between frames), "
        "which bounds the memory the node keeps for reuse; 0: never.",
        float_range=(0.0, 3600.0),
    ),
    ParamSpec(
        "on_resolution_change",
        "resize",
        "What a change of the image size does to the tracked objects: resize (carried over) or reset (forgotten).",
        check=_one_of("on_resolution_change", RESOLUTION_CHANGE_CHOICES),
    ),
    ParamSpec(
        "prompt_policy",
        "add_new",
        "What a box on ~/prompts that matches a tracked object does: add_new ignores it (only unmatched boxes "
        "become new objects); refresh re-seeds the object from the box when its score is below lost_threshold.",
        check=_one_of("prompt_policy", PROMPT_POLICIES),
    ),
    ParamSpec(
        "prompt_match_iou",
        0.5,
        "Box IoU with a tracked object's last box at or above which a ~/prompts box matches that object.",
        float_range=(0.0, 1.0),
    ),
)

SPECS = {spec.name: spec for spec in PARAMETERS}
