"""Shared fixtures: one network per config for the whole run (they are read-only)."""

import warnings

import pytest
import torch

from vos_ros.model import build_network

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def matching_network():
    return build_network("matching", device="cpu")


@pytest.fixture(scope="session")
def fast_network():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_network("fast", device="cpu")
