"""How a node snapshot becomes OK / WARN / ERROR and a DiagnosticArray on /diagnostics (no rclpy node, no DDS)."""

import math

from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Header

from vos_ros.ros.diagnostics import Limits, Snapshot, assess, diagnostic_array, drop_rate

LIMITS = Limits(input_timeout=2.0, stale_input_s=5.0, model_failures_error=3, max_drop_rate=0.5, max_latency_ms=300.0)


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
        lifecycle_state="active",
    )
    values.update(changes)
    return Snapshot(**values)


def test_healthy_active_node_is_ok():
    assert assess(snapshot(), LIMITS) == (DiagnosticStatus.OK, "tracking 2 objects (1 visible)")


def test_consecutive_model_failures_are_an_error_with_the_last_message():
    below = snapshot(consecutive_failures=2, model_errors=9, last_error="RuntimeError: CUDA out of memory")
    assert assess(below, LIMITS)[0] == DiagnosticStatus.OK
    level, message = assess(
        snapshot(consecutive_failures=3, model_errors=9, last_error="RuntimeError: CUDA out of memory"), LIMITS
    )
    assert level == DiagnosticStatus.ERROR
    assert "3 consecutive" in message and "RuntimeError: CUDA out of memory" in message


def test_stale_input_while_active_is_an_error_but_not_while_inactive():
    level, message = assess(snapshot(seconds_without_input_while_active=6.5, seconds_since_input=6.5), LIMITS)
    assert level == DiagnosticStatus.ERROR and "6.5 s" in message and "stale_input_s=5" in message
    level, _ = assess(snapshot(seconds_without_input_while_active=3.0, seconds_since_input=3.0), LIMITS)
    assert level == DiagnosticStatus.WARN, "past input_timeout but not stale yet"
    level, message = assess(snapshot(lifecycle_state="inactive", seconds_since_input=600.0), LIMITS)
    assert level == DiagnosticStatus.OK and message.startswith("inactive") and "keeping 2 objects" in message


def test_drop_rate_and_latency_over_their_limits_warn():
    assert drop_rate(snapshot(input_hz=30.0, output_hz=10.0)) == 1 - 10.0 / 30.0
    assert drop_rate(snapshot(input_hz=0.0, output_hz=0.0)) == 0.0
    level, message = assess(snapshot(input_hz=30.0, output_hz=10.0), LIMITS)
    assert level == DiagnosticStatus.WARN and "67% of the input frames dropped" in message
    level, message = assess(snapshot(latency_ms=450.0), LIMITS)
    assert level == DiagnosticStatus.WARN and "latency 450 ms" in message
    level, message = assess(snapshot(latency_ms=450.0, input_hz=30.0, output_hz=10.0), LIMITS)
    assert "dropped" in message and "latency" in message
    assert assess(snapshot(latency_ms=math.nan), LIMITS)[0] == DiagnosticStatus.OK, "no latency figure yet"


def test_failed_configure_is_an_error_with_its_reason():
    level, message = assess(
        snapshot(lifecycle_state="unconfigured", configure_error="weights file 'x' does not exist"), LIMITS
    )
    assert level == DiagnosticStatus.ERROR and message == "configure failed: weights file 'x' does not exist"
    level, message = assess(snapshot(lifecycle_state="unconfigured"), LIMITS)
    assert level == DiagnosticStatus.OK and message.startswith("unconfigured")


def test_status_holds_the_error_counter_and_the_lifecycle_state():
    array = diagnostic_array(
        snapshot(model_errors=4, consecutive_failures=1, last_error="ValueError: bad"),
        "/cam/vos_node: segmentation",
        LIMITS,
        Header().stamp,
    )
    values = {kv.key: kv.value for kv in array.status[0].values}
    assert values["model_errors"] == "4" and values["consecutive_failures"] == "1"
    assert values["lifecycle_state"] == "active" and values["last_error"] == "ValueError: bad"


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
