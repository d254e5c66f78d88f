"""Tiny static photos made in the tests, and a folder of them in the layout of ../shared/data/static."""

from pathlib import Path

import numpy as np
from PIL import Image


def make_photo(seed: int, size: tuple[int, int] = (72, 96)) -> tuple[np.ndarray, np.ndarray]:
    """A textured photo (HxWx3 uint8) with one elliptical object (HxW bool mask)."""
    height, width = size
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    photo = (rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3))).astype(np.uint8)
    photo = np.kron(photo, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    ry, rx = rng.uniform(0.15, 0.3) * height, rng.uniform(0.15, 0.3) * width
    mask = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1.0
    photo[mask] = (photo[mask] // 2 + np.array([120, 60, 0], dtype=np.uint8)).astype(np.uint8)
    return photo, mask


def write_static_folder(root: Path) -> Path:
    """Five photos in two subsets (``<set>/images``, ``<set>/masks``, ``<set>/list.txt``)."""
    for subset, seeds in (("one", (0, 1, 2)), ("two", (3, 4))):
        (root / subset / "images").mkdir(parents=True)
        (root / subset / "masks").mkdir()
        names = []
        for seed in seeds:
            photo, mask = make_photo(seed)
            name = f"photo{seed}"
            Image.fromarray(photo).save(root / subset / "images" / f"{name}.jpg", quality=90)
            Image.fromarray(mask).save(root / subset / "masks" / f"{name}.png")
            names.append(name)
        (root / subset / "list.txt").write_text("\n".join(names) + "\n")
    return root
