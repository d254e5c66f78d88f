"""Reading a DAVIS-layout folder, lazily, and writing indexed label PNGs.

Layout: ``JPEGImages/<seq>/*.jpg``, ``Annotations/<seq>/*.png`` (palette PNGs, one per frame,
same file stem as the frame) and ``ImageSets/<split>.txt``. The official DAVIS 2017 layout
(``JPEGImages/480p``, ``Annotations/480p``, ``ImageSets/2017``) is found too.

Annotations become uint16 label maps (0 = background, k = object k). A sequence whose first
annotation holds only 0 and 255 is a DAVIS 2016 binary mask: every nonzero pixel is object 1.
In multi-object annotations the value 255 marks void pixels, which count as background, as in
davis2017-evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from vos_ros.overlay import davis_palette

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VOID_LABEL = 255


class DavisError(ValueError):
    """The folder is not a usable DAVIS layout (missing folders, frames, annotations or split)."""


def _first_existing(candidates: list[Path]) -> Path | None:
    return next((path for path in candidates if path.exists()), None)


def read_image(path: Path) -> np.ndarray:
    """An image file as an HxWx3 uint8 RGB array."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except OSError as error:
        raise DavisError(f"cannot read image {path}: {error}") from error


def read_label_png(path: Path) -> np.ndarray:
    """A palette (indexed) or grayscale PNG as an HxW array of its raw pixel values."""
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L", "1", "I", "I;16"):
                raise DavisError(f"{path}: mode {image.mode} is not an indexed or grayscale label PNG")
            values = np.asarray(image)
    except OSError as error:
        raise DavisError(f"cannot read annotation {path}: {error}") from error
    if values.min() < 0 or values.max() > np.iinfo(np.uint16).max:
        raise DavisError(f"{path}: label values outside 0..65535")
    return values.astype(np.uint16)


def write_label_png(path: Path, label_map: np.ndarray) -> None:
    """Save a label map as an indexed PNG with the DAVIS palette (16-bit grayscale if an id exceeds 255)."""
    label_map = np.asarray(label_map)
    if label_map.ndim != 2:
        raise ValueError(f"label map must be 2-D, got shape {label_map.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if label_map.size and label_map.max() > 255:
        Image.fromarray(label_map.astype(np.uint16)).save(path)
        return
    image = Image.fromarray(label_map.astype(np.uint8), mode="P")
    image.putpalette(davis_palette())
    image.save(path)


@dataclass(frozen=True)
class DavisSequence:
    """One sequence: frame and annotation paths; images and label maps are read on demand."""

    name: str
    frame_paths: tuple[Path, ...]
    annotation_paths: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.frame_paths)

    @cached_property
    def binary(self) -> bool:
        """True for DAVIS 2016 style 0/255 masks (every nonzero pixel is object 1)."""
        values = set(np.unique(read_label_png(self.annotation_paths[0])).tolist())
        return values == {0, VOID_LABEL}

    @cached_property
    def object_ids(self) -> list[int]:
        """The object ids of the first annotation (sorted)."""
        return [int(v) for v in np.unique(self.annotation(0)) if v != 0]

    def image(self, index: int) -> np.ndarray:
        """Frame ``index`` as HxWx3 uint8 RGB."""
        return read_image(self.frame_paths[index])

    def annotation(self, index: int) -> np.ndarray:
        """Annotation ``index`` as an HxW uint16 label map (0 = background)."""
        raw = read_label_png(self.annotation_paths[index])
        if self.binary:
            return (raw != 0).astype(np.uint16)
        raw[raw == VOID_LABEL] = 0
        return raw

    def frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(image, label map) per frame, in order, read one at a time."""
        for index in range(len(self)):
            image = self.image(index)
            label_map = self.annotation(index)
            if image.shape[:2] != label_map.shape:
                raise DavisError(
                    f"{self.name} frame {self.frame_paths[index].name}: image {image.shape[:2]} "
                    f"and annotation {label_map.shape} differ in size"
                )
            yield image, label_map


class DavisDataset:
    """A DAVIS-layout folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DavisError(f"DAVIS folder {self.root} does not exist")
        images = _first_existing([self.root / "JPEGImages" / "480p", self.root / "JPEGImages"])
        annotations = _first_existing([self.root / "Annotations" / "480p", self.root / "Annotations"])
        if images is None or annotations is None:
            raise DavisError(f"{self.root} is not a DAVIS layout: it needs JPEGImages/ and Annotations/")
        self.images_dir = images
        self.annotations_dir = annotations

    def _split_candidates(self, name: str) -> list[Path]:
        sets = self.root / "ImageSets"
        return [sets / f"{name}.txt"] + [sets / sub / f"{name}.txt" for sub in ("2017", "2016", "480p")]

    def default_split(self) -> str:
        """``dev`` when the folder defines it, else ``val``."""
        return "dev" if _first_existing(self._split_candidates("dev")) else "val"

    def split(self, name_or_path: str | Path) -> list[str]:
        """Sequence names of a split: a name looked up under ImageSets/, or a path to a list file.

        One sequence per line; blank lines and ``#`` comments are skipped. Lines of the original
        DAVIS 2016 form (``/JPEGImages/480p/<seq>/00000.jpg ...``) give their sequence folder.
        """
        path = Path(name_or_path)
        if not path.is_file():
            path = _first_existing(self._split_candidates(str(name_or_path)))
            if path is None:
                raise DavisError(
                    f"split '{name_or_path}' is neither a file nor ImageSets/{name_or_path}.txt under {self.root}"
                )
        names: list[str] = []
        for line in path.read_text().splitlines():
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            first = entry.split()[0]
            name = Path(first).parent.name if "/" in first else first
            if name not in names:
                names.append(name)
        if not names:
            raise DavisError(f"split file {path} lists no sequences")
        return names

    def sequence(self, name: str) -> DavisSequence:
        """A sequence by name; every frame must have an annotation with the same file stem."""
        frame_dir = self.images_dir / name
        if not frame_dir.is_dir():
            raise DavisError(f"sequence '{name}': no frame folder {frame_dir}")
        frames = sorted(p for p in frame_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not frames:
            raise DavisError(f"sequence '{name}': no frames in {frame_dir}")
        annotations = tuple(self.annotations_dir / name / f"{p.stem}.png" for p in frames)
        missing = [p.name for p in annotations if not p.is_file()]
        if missing:
            raise DavisError(
                f"sequence '{name}': {len(missing)} frame(s) without annotation in "
                f"{self.annotations_dir / name} (first: {missing[0]})"
            )
        sequence = DavisSequence(name, tuple(frames), annotations)
        if not sequence.object_ids:
            raise DavisError(f"sequence '{name}': the first annotation {annotations[0].name} has no object")
        return sequence


def write_sequence(root: str | Path, name: str, frames: np.ndarray, label_maps: np.ndarray) -> DavisSequence:
    """Write a clip in the DAVIS layout (``JPEGImages/<name>/00000.jpg``, indexed annotation PNGs).

    ``frames`` is T x H x W x 3 uint8 RGB, ``label_maps`` T x H x W integer. Returns the written sequence.
    """
    frames = np.asarray(frames)
    label_maps = np.asarray(label_maps)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be T x H x W x 3 uint8, got {frames.shape} {frames.dtype}")
    if label_maps.shape != frames.shape[:3]:
        raise ValueError(f"label maps {label_maps.shape} do not match frames {frames.shape[:3]}")
    root = Path(root)
    image_dir = root / "JPEGImages" / name
    image_dir.mkdir(parents=True, exist_ok=True)
    for index, (frame, label_map) in enumerate(zip(frames, label_maps)):
        Image.fromarray(frame).save(image_dir / f"{index:05d}.jpg", quality=95)
        write_label_png(root / "Annotations" / name / f"{index:05d}.png", label_map)
    return DavisDataset(root).sequence(name)
