"""The node's /diagnostics status: figures gathered by the node, judged and formatted here."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


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


def assess(snapshot: Snapshot, input_timeout: float) -> tuple[bytes, str]:
    """(level, message): WARN while no input arrives, OK otherwise."""
    if snapshot.seconds_since_input > input_timeout:
        if math.isinf(snapshot.seconds_since_input):
            return DiagnosticStatus.WARN, "no input image received yet"
        return DiagnosticStatus.WARN, f"no input image for {snapshot.seconds_since_input:.1f} s"
    if snapshot.objects_tracked == 0:
        return DiagnosticStatus.OK, "waiting for objects (call ~/set_initial_mask)"
    return DiagnosticStatus.OK, f"tracking {snapshot.objects_tracked} objects ({snapshot.objects_visible} visible)"


def _format(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else "inf" if math.isinf(value) else f"{value:.2f}"
    return str(value)


def diagnostic_array(snapshot: Snapshot, name: str, input_timeout: float, stamp) -> DiagnosticArray:
    """One DiagnosticArray with the node's status; every snapshot field is a key/value pair."""
    level, message = assess(snapshot, input_timeout)
    status = DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=snapshot.device,
        values=[KeyValue(key=key, value=_format(value)) for key, value in asdict(snapshot).items()],
    )
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
