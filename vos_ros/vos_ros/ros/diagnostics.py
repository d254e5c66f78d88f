"""The node's /diagnostics status: figures gathered by the node, judged and formatted here."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

DIAGNOSTIC_TASK = "segmentation"  # the status is named "<node>: segmentation"


@dataclass(frozen=True)
class Snapshot:
    """What the node reports once per diagnostics period (windows cover the last few seconds)."""

    device: str
    model_ms: float  # mean inference time per frame
    input_delay_ms: float  # mean input stamp -> frame decoded, of the processed frames (on the node's clock)
    queue_ms: float  # mean time a processed frame waited between being decoded and the start of inference
    latency_ms: float  # mean input stamp -> labels published, on the node's clock
    latency_max_ms: float
    input_hz: float
    output_hz: float
    seconds_since_input: float
    frames_received: int
    frames_processed: int
    frames_dropped: int  # replaced by a newer frame before inference reached them
    bad_frames: int  # refused: unsupported encoding, malformed, wrong size
    overlays_published: int
    objects_tracked: int
    objects_visible: int
    lifecycle_state: str = "active"
    configure_error: str = ""  # why the last configure failed ("" when it did not)
    seconds_without_input_while_active: float = 0.0  # since the last image or the activation (0 when not active)
    model_errors: int = 0  # frames that raised in processing, since start
    consecutive_failures: int = 0  # of those, in a row up to now
    last_error: str = ""  # the last such exception's message
    time_jumps: int = 0  # image stamps or /clock jumped (backwards, or forwards past max_forward_jump), since start
    resolution_changes: int = 0  # the input image size changed mid-stream, since start
    quietest_camera: str = ""  # with several cameras: the one whose last image is oldest (input ages are its)
    frame_buffer_mb: float = 0.0  # what the recent frames of the stamp lookups hold (pixels or kept messages), MB


@dataclass(frozen=True)
class Limits:
    """The thresholds that turn a snapshot into OK, WARN or ERROR (the node's parameters)."""

    input_timeout: float = 2.0  # WARN: seconds without an image
    stale_input_s: float = math.inf  # ERROR: seconds without an image while active
    model_failures_error: int = 3  # ERROR: this many consecutive frames failing in the model
    max_drop_rate: float = 1.0  # WARN: above this fraction of input frames unprocessed
    max_latency_ms: float = math.inf  # WARN: mean stamp -> labels latency above this


def drop_rate(snapshot: Snapshot) -> float:
    """Fraction of the input frames of the last few seconds that were not processed (0 without input)."""
    if snapshot.input_hz <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - snapshot.output_hz / snapshot.input_hz))


def assess(snapshot: Snapshot, limits: Limits | float) -> tuple[bytes, str]:
    """(level, message) of a snapshot; ``limits`` may be just the input timeout (other limits off).

    Not active: ERROR after a failed configure (with its reason), OK otherwise (paused on purpose).
    Active: ERROR after ``model_failures_error`` consecutive failures (with the last exception's
    message) or without an image for ``stale_input_s``; WARN without an image for ``input_timeout``
    or when the drop rate or the latency exceeds its limit; OK otherwise.
    """
    if not isinstance(limits, Limits):
        limits = Limits(input_timeout=limits)
    state = snapshot.lifecycle_state
    if state != "active":
        if state == "unconfigured" and snapshot.configure_error:
            return DiagnosticStatus.ERROR, f"configure failed: {snapshot.configure_error}"
        kept = f"; keeping {snapshot.objects_tracked} objects" if state == "inactive" else ""
        return DiagnosticStatus.OK, f"{state}: not processing (activate to segment){kept}"
    if snapshot.consecutive_failures >= limits.model_failures_error:
        return (
            DiagnosticStatus.ERROR,
            f"{snapshot.consecutive_failures} consecutive frames failed in the model: {snapshot.last_error}",
        )
    on = f" on camera {snapshot.quietest_camera!r}" if snapshot.quietest_camera else ""
    if snapshot.seconds_without_input_while_active > limits.stale_input_s:
        return (
            DiagnosticStatus.ERROR,
            f"no input image{on} for {snapshot.seconds_without_input_while_active:.1f} s while active "
            f"(stale_input_s={limits.stale_input_s:g})",
        )
    warnings = []
    if drop_rate(snapshot) > limits.max_drop_rate:
        warnings.append(
            f"{drop_rate(snapshot):.0%} of the input frames dropped (max_drop_rate={limits.max_drop_rate:g})"
        )
    if snapshot.latency_ms > limits.max_latency_ms:
        warnings.append(f"latency {snapshot.latency_ms:.0f} ms (max_latency_ms={limits.max_latency_ms:g})")
    if warnings:
        return DiagnosticStatus.WARN, "; ".join(warnings)
    if snapshot.seconds_since_input > limits.input_timeout:
        if math.isinf(snapshot.seconds_since_input):
            return DiagnosticStatus.WARN, f"no input image{on} received yet"
        return DiagnosticStatus.WARN, f"no input image{on} for {snapshot.seconds_since_input:.1f} s"
    if snapshot.objects_tracked == 0:
        return DiagnosticStatus.OK, "waiting for objects (call ~/set_initial_mask)"
    return DiagnosticStatus.OK, f"tracking {snapshot.objects_tracked} objects ({snapshot.objects_visible} visible)"


def _format(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else "inf" if math.isinf(value) else f"{value:.2f}"
    return str(value)


def diagnostic_array(
    snapshot: Snapshot, name: str, limits: Limits | float, stamp, extra: tuple[tuple[str, object], ...] = ()
) -> DiagnosticArray:
    """One DiagnosticArray with the node's status; every snapshot field is a key/value pair, then ``extra``'s
    (with several cameras: the batch figures and each camera's as ``<camera>/<key>``)."""
    level, message = assess(snapshot, limits)
    fields = asdict(snapshot)
    status = DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=snapshot.device,
        values=[KeyValue(key=key, value=_format(value)) for key, value in [*fields.items(), *extra]],
    )
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
