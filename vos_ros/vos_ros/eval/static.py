"""The static photo folders (DUTS-TR, ECSSD layout): ``<set>/list.txt`` naming ``images/<n>.jpg`` and
``masks/<n>.png``. Read here once, for static-video training, prompt training and prompt evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

LIST_NAME = "list.txt"


def static_sets(root: str | Path) -> dict[str, list[tuple[Path, Path]]]:
    """(image, mask) paths of each set of a static folder, in list order, sets sorted by name."""
    root = Path(root)
    lists = sorted(root.glob(f"*/{LIST_NAME}"))
    if not lists:
        raise ValueError(f"{root}: no */{LIST_NAME} (expected e.g. duts-tr/{LIST_NAME} with images/ and masks/)")
    sets = {}
    for listing in lists:
        folder = listing.parent
        names = listing.read_text().split()
        sets[folder.name] = [(folder / "images" / f"{n}.jpg", folder / "masks" / f"{n}.png") for n in names]
    if not any(sets.values()):
        raise ValueError(f"{root}: the list files name no images")
    return sets


def static_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) paths of every photo of a static folder (the sets one after another)."""
    return [pair for pairs in static_sets(root).values() for pair in pairs]


def read_static_pair(image_path: str | Path, mask_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A photo (HxWx3 uint8 RGB) and its mask (HxW uint16, 1 = object) from files."""
    try:
        with Image.open(image_path) as image:
            photo = np.asarray(image.convert("RGB"), dtype=np.uint8)
        with Image.open(mask_path) as mask_image:
            mask = (np.asarray(mask_image) != 0).astype(np.uint16)
    except OSError as error:
        raise ValueError(f"cannot read static pair {image_path}, {mask_path}: {error}") from error
    if photo.shape[:2] != mask.shape:
        raise ValueError(f"{image_path}: image {photo.shape[:2]} and mask {mask.shape} differ in size")
    return photo, mask


def static_items(root: str | Path, every: int = 1, offset: int = 0) -> list[tuple[str, Path, Path]]:
    """(name ``<set>/<n>``, image, mask) of photos ``offset``, ``offset + every``, ... of each set."""
    return [
        (f"{name}/{image.stem}", image, mask)
        for name, pairs in static_sets(root).items()
        for image, mask in pairs[offset::every]
    ]
