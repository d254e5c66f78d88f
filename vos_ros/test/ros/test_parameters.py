"""Parameter specs: defaults valid and described, documented, bad values refused with a reason."""

from pathlib import Path

import pytest

from vos_ros.model import CONFIGS
from vos_ros.ros.parameters import PARAMETERS, SPECS


def test_every_parameter_default_is_valid_and_described():
    for spec in PARAMETERS:
        assert spec.problem(spec.default) is None, spec.name
        descriptor = spec.descriptor()
        assert descriptor.name == spec.name and descriptor.description
        assert bool(descriptor.integer_range) == (spec.int_range is not None)
        assert bool(descriptor.floating_point_range) == (spec.float_range is not None)
    reload_needed = {"config", "weights", "device", "short_side", "max_objects", "torch_threads"}
    assert reload_needed <= {spec.name for spec in PARAMETERS if spec.read_only}


def test_every_parameter_is_documented():
    doc = (Path(__file__).resolve().parents[3] / "docs" / "node.md").read_text()
    documented = {line.split("`")[1] for line in doc.splitlines() if line.startswith("| `")}
    assert {spec.name for spec in PARAMETERS} <= documented


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("config", "huge", "unknown config 'huge'"),
        ("weights", "/no/such/file.pt", "does not exist"),
        ("device", "gpu0", "is not auto, cpu, cuda or cuda:N"),
        ("overlay_alpha", 1.5, "outside [0.0, 1.0]"),
        ("lost_threshold", -0.1, "outside [0.0, 1.0]"),
        ("max_objects", 0, "outside [1, 65535]"),
        ("max_objects", 8.0, "must be of type int"),
        ("short_side", 8, "too small"),
        ("frame_buffer_size", 0, "outside"),
        ("diagnostics_period", 0.0, "outside"),
        ("overlay_alpha", "half", "must be of type float"),
    ],
)
def test_invalid_values_are_rejected_with_a_reason(name, value, reason):
    assert reason in SPECS[name].problem(value)


@pytest.mark.parametrize(
    "name, value",
    [("config", name) for name in CONFIGS]
    + [
        ("device", "cpu"),
        ("device", "cuda:1"),
        ("short_side", 0),
        ("short_side", 192),
        ("overlay_alpha", 0.0),
        ("weights", ""),
    ],
)
def test_valid_values_pass(name, value):
    assert SPECS[name].problem(value) is None
