"""Shared fixtures: one network per config for the whole run (they are read-only)."""

import warnings

import pytest
import torch

from vos_ros.model import build_network

torch.set_num_threads(2)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "ros: starts vos_node processes or talks DDS (deselect with -m 'not ros' for the fast core)"
    )


@pytest.fixture(scope="session")
def matching_network():
    return build_network("matching", device="cpu")


@pytest.fixture(scope="session")
def fast_network():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_network("fast", device="cpu")
