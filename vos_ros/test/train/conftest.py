"""Fixtures of the training tests: a tiny static-photo folder (photos made here, not read from ../shared)."""

import pytest
from static_photos import write_static_folder


@pytest.fixture(scope="session")
def static_folder(tmp_path_factory):
    return write_static_folder(tmp_path_factory.mktemp("static"))
