"""Assessing the node's figures into a diagnostics status."""

import math

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Header

from vos_ros.ros.diagnostics import Snapshot, assess, diagnostic_array
from vos_ros.ros.frames import Frame


def frame(stamp_ns: int, received: float | None = None) -> Frame:
    rgb = np.full((4, 6, 3), stamp_ns % 256, np.uint8)
    if received is None:
        return Frame(header=Header(), rgb=rgb, stamp_ns=stamp_ns)
    return Frame(header=Header(), rgb=rgb, stamp_ns=stamp_ns, received=received)


def snapshot(**changes) -> Snapshot:
    values = dict(
        device="cpu",
        model_ms=40.0,
        input_delay_ms=2.0,
        queue_ms=5.0,
        latency_ms=50.0,
        latency_max_ms=70.0,
        input_hz=30.0,
        output_hz=20.0,
        seconds_since_input=0.1,
        frames_received=100,
        frames_processed=60,
        frames_dropped=38,
        bad_frames=2,
        overlays_published=0,
        objects_tracked=2,
        objects_visible=1,
    )
    values.update(changes)
    return Snapshot(**values)


def test_assess_warns_without_input_and_reports_tracking():
    assert assess(snapshot(), 2.0) == (DiagnosticStatus.OK, "tracking 2 objects (1 visible)")
    assert assess(snapshot(objects_tracked=0), 2.0)[1].startswith("waiting for objects")
    level, message = assess(snapshot(seconds_since_input=3.5), 2.0)
    assert level == DiagnosticStatus.WARN and "3.5 s" in message
    level, message = assess(snapshot(seconds_since_input=math.inf), 2.0)
    assert level == DiagnosticStatus.WARN and "yet" in message


def test_diagnostic_array_holds_every_figure():
    stamp = Header().stamp
    stamp.sec = 5
    array = diagnostic_array(snapshot(model_ms=math.nan), "/cam/vos_node: segmentation", 2.0, stamp)
    assert array.header.stamp.sec == 5
    (status,) = array.status
    assert status.name == "/cam/vos_node: segmentation" and status.hardware_id == "cpu"
    values = {kv.key: kv.value for kv in status.values}
    assert values["model_ms"] == "nan"
    assert values["latency_ms"] == "50.00"
    assert values["frames_dropped"] == "38"
    assert set(values) == set(Snapshot.__dataclass_fields__)
