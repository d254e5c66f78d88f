"""Fixtures of the training tests: a tiny static-photo folder and a tiny DAVIS-layout folder (both made here, not read from ../shared)."""

import pytest
from static_photos import write_static_folder

from vos_ros.eval.davis import write_sequence
from vos_ros.synthetic import make_clip


@pytest.fixture(scope="session")
def static_folder(tmp_path_factory):
    return write_static_folder(tmp_path_factory.mktemp("static"))


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    """Sequences alpha (fit.txt) and beta (dev.txt), five 128x96 frames with two objects each."""
    root = tmp_path_factory.mktemp("davis")
    for seed, name in enumerate(("alpha", "beta")):
        clip = make_clip(num_objects=2, num_frames=5, size=(96, 128), seed=seed)
        write_sequence(root, name, clip.frames, clip.labels)
    (root / "ImageSets").mkdir()
    (root / "ImageSets" / "fit.txt").write_text("alpha\n")
    (root / "ImageSets" / "dev.txt").write_text("beta\n")
    return root
