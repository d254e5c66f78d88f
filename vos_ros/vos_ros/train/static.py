"""Synthetic video from one photograph and its mask, for pretraining before DAVIS.

A ``StaticVideo`` is a ``Video`` (``vos_ros.train.clips``) whose frame ``t`` is the photo under a
smoothly varying random transform: an affine map (scale, rotation, translation, shear) about
the image centre, a mild non-rigid warp (a coarse random displacement field, bilinearly
upsampled), a photometric change (brightness, contrast, saturation) and sometimes blur. Every
parameter is eased between a few random keyframes, so consecutive frames move smoothly. The
mask goes through the very same sampling map with nearest-neighbour interpolation, so each
frame's mask is exact (its values are the photo's mask values, moved). A frame whose object
would keep less than ``min_visible_fraction`` of its area is pulled towards the identity
transform until enough shows: the object never leaves a labelled frame.

Everything comes from the seed given to the video, so frames are a pure function of
(photo, seed). ``StaticVideos`` serves a folder of photos as a sequence of such videos (many
seeded variants per photo), and ``MixedVideos`` mixes sources with fixed weights; both plug
into ``make_training_clip`` unchanged, which pastes objects of other videos on top (multi-object
clips, occlusion, unlabelled look-alike distractors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from vos_ros.eval.static import read_static_pair, static_pairs
from vos_ros.train.clips import Video


@dataclass(frozen=True)
class MotionSpec:
    """How far a static video moves over its ``length`` frames (amplitudes of the random keyframes).

    ``scale`` is the log of the largest zoom, ``rotation`` degrees, ``translation`` and
    ``elastic`` fractions of the image's short side, ``shear`` the shear factor; photometric
    amplitudes are fractions (brightness of the full range, contrast and saturation as gains).
    """

    length: int = 24
    keyframes: int = 3
    scale: float = 0.25
    rotation: float = 15.0
    translation: float = 0.15
    shear: float = 0.1
    elastic: float = 0.015
    elastic_grid: int = 5
    brightness: float = 0.12
    contrast: float = 0.2
    saturation: float = 0.3
    blur_probability: float = 0.3
    max_blur_sigma: float = 1.5
    min_visible_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.length < 2 or self.keyframes < 2:
            raise ValueError(
                f"a static video needs length >= 2 and keyframes >= 2, got {self.length}, {self.keyframes}"
            )
        if not 0.0 < self.min_visible_fraction <= 1.0:
            raise ValueError(f"min_visible_fraction must be in (0, 1], got {self.min_visible_fraction}")


# Per-keyframe geometric parameters: log scale, rotation (deg), tx, ty (short-side fractions), shear x, shear y.
_GEOMETRY = 6
# Per-keyframe photometric parameters: brightness offset, contrast gain, saturation gain, blur sigma.
_PHOTOMETRY = 4


def affine_matrix(size: tuple[int, int], geometry: np.ndarray) -> np.ndarray:
    """The 2x3 forward affine map of ``geometry`` (see ``_GEOMETRY``) about the centre of an (h, w) image."""
    height, width = size
    log_scale, rotation, tx, ty, shear_x, shear_y = (float(v) for v in geometry)
    short = min(height, width)
    angle = math.radians(rotation)
    rotate = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shear = np.array([[1.0, shear_x], [shear_y, 1.0]])
    linear = math.exp(log_scale) * rotate @ shear
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    offset = centre - linear @ centre + np.array([tx, ty]) * short
    return np.concatenate([linear, offset[:, None]], axis=1)


def sampling_maps(size: tuple[int, int], matrix: np.ndarray, displacement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps: output pixel p reads the source at A^-1 p plus ``displacement`` [2, h, w] (pixels)."""
    height, width = size
    inverse = cv2.invertAffineTransform(matrix)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2] + displacement[0]
    map_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2] + displacement[1]
    return map_x.astype(np.float32), map_y.astype(np.float32)


def warp_pair(
    image: np.ndarray, mask: np.ndarray, maps: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The image (bilinear) and label map (nearest neighbour) resampled through the same ``maps``.

    Both reflect at the border, so any part of the object reflected into view is labelled too.
    """
    map_x, map_y = maps
    warped = cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    labels = cv2.remap(
        mask.astype(np.uint16), map_x, map_y, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101
    )
    return warped, labels


def photometric(image: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Brightness offset, contrast and saturation gains, then Gaussian blur of sigma ``params[3]`` (if > 0.3)."""
    brightness, contrast, saturation, sigma = (float(v) for v in params)
    pixels = image.astype(np.float32)
    gray = pixels.mean(axis=2, keepdims=True)
    pixels = gray + (pixels - gray) * saturation
    pixels = (pixels - pixels.mean()) * contrast + pixels.mean() + brightness * 255.0
    out = np.clip(pixels + 0.5, 0, 255).astype(np.uint8)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    return out


def _ease(keys: np.ndarray, t: float) -> np.ndarray:
    """Keyframe values [K, ...] at time ``t`` in [0, 1], cosine-eased between neighbouring keyframes."""
    position = t * (len(keys) - 1)
    low = min(int(position), len(keys) - 2)
    fraction = position - low
    weight = 0.5 - 0.5 * math.cos(math.pi * fraction)
    return keys[low] * (1 - weight) + keys[low + 1] * weight


class StaticVideo:
    """``motion.length`` frames of one photo (HxWx3 uint8) and its label map (HxW, 0 = background)."""

    def __init__(self, image: np.ndarray, mask: np.ndarray, seed, motion: MotionSpec | None = None) -> None:
        if image.shape[:2] != mask.shape:
            raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} differ in size")
        if not np.any(mask):
            raise ValueError("a static video needs a mask with an object in it")
        self.photo = image
        self.mask = mask.astype(np.uint16)
        self.motion = motion or MotionSpec()
        m = self.motion
        rng = np.random.default_rng(seed)
        k = m.keyframes
        amplitude = np.array([m.scale, m.rotation, m.translation, m.translation, m.shear, m.shear])
        self.geometry = rng.uniform(-1.0, 1.0, size=(k, _GEOMETRY)) * amplitude
        short = min(mask.shape)
        grid = rng.uniform(-1.0, 1.0, size=(k, 2, m.elastic_grid, m.elastic_grid)) * m.elastic * short
        self.elastic = grid.astype(np.float32)
        blur = rng.random() < m.blur_probability
        self.photometry = np.stack(
            [
                rng.uniform(-m.brightness, m.brightness, size=k),
                np.exp(rng.uniform(-m.contrast, m.contrast, size=k)),
                np.exp(rng.uniform(-m.saturation, m.saturation, size=k)),
                rng.uniform(0.0, m.max_blur_sigma, size=k) if blur else np.zeros(k),
            ],
            axis=1,
        )
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.motion.length

    def transform(self, index: int, strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``index``'s affine matrix and displacement field [2, h, w], scaled by ``strength`` (0 = identity)."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} of a {len(self)}-frame static video")
        t = index / (len(self) - 1)
        size = self.mask.shape
        matrix = affine_matrix(size, _ease(self.geometry, t) * strength)
        coarse = _ease(self.elastic, t) * strength
        height, width = size
        displacement = np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) for c in coarse])
        return matrix, displacement

    def frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, label map) of frame ``index``, with at least ``min_visible_fraction`` of the object in view."""
        if index not in self._cache:
            if len(self._cache) > 2 * len(self):
                self._cache.clear()
            needed = self.motion.min_visible_fraction * np.count_nonzero(self.mask)
            for strength in (1.0, 0.5, 0.25, 0.0):
                maps = sampling_maps(self.mask.shape, *self.transform(index, strength))
                image, labels = warp_pair(self.photo, self.mask, maps)
                if np.count_nonzero(labels) >= needed or strength == 0.0:
                    break
            t = index / (len(self) - 1)
            self._cache[index] = (photometric(image, _ease(self.photometry, t)), labels)
        return self._cache[index]

    def image(self, index: int) -> np.ndarray:
        return self.frame(index)[0]

    def annotation(self, index: int) -> np.ndarray:
        return self.frame(index)[1]


_read_cached = lru_cache(maxsize=256)(read_static_pair)


class StaticVideos(Sequence):
    """Photos served as ``StaticVideo``s: item ``i`` is photo ``i % n`` moving with seed ``(seed, i)``.

    ``variants`` seeded motions per photo make the sequence ``n * variants`` long, so random
    draws rarely repeat a motion. Photos are read on demand (a small cache keeps recent ones).
    """

    def __init__(
        self,
        pairs: list[tuple[Path, Path]],
        motion: MotionSpec | None = None,
        seed: int = 0,
        variants: int = 1000,
    ) -> None:
        if not pairs:
            raise ValueError("no static photos")
        self.pairs = list(pairs)
        self.motion = motion or MotionSpec()
        self.seed = seed
        self.variants = variants

    @classmethod
    def from_folder(cls, root: str | Path, **kwargs) -> StaticVideos:
        return cls(static_pairs(root), **kwargs)

    def __len__(self) -> int:
        return len(self.pairs) * self.variants

    def __getitem__(self, index: int) -> StaticVideo:
        if not 0 <= index < len(self):
            raise IndexError(index)
        photo, mask = _read_cached(*self.pairs[index % len(self.pairs)])
        return StaticVideo(photo, mask, seed=[self.seed, index], motion=self.motion)


class MixedVideos(Sequence):
    """Several video sources as one sequence: a uniform index lands in source ``s`` with probability ``weights[s]``.

    Within a source the index is spread evenly over all of its items, so ``make_training_clip``
    draws bases and pastes from the mixture unchanged (static objects pasted over DAVIS frames
    and the other way round).
    """

    RESOLUTION = 1 << 40

    def __init__(self, sources: list[Sequence[Video]], weights: list[float]) -> None:
        if len(sources) != len(weights) or not sources:
            raise ValueError("one weight per source, at least one source")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be >= 0 with a positive sum, got {weights}")
        kept = [(s, w) for s, w in zip(sources, weights) if w > 0]
        if any(len(s) == 0 for s, _ in kept):
            raise ValueError("a source with a positive weight has no videos")
        self.sources = [s for s, _ in kept]
        total = sum(w for _, w in kept)
        bounds = np.cumsum([w / total for _, w in kept]) * self.RESOLUTION
        self.bounds = [0, *(int(b) for b in bounds[:-1]), self.RESOLUTION]

    def __len__(self) -> int:
        return self.RESOLUTION

    def __getitem__(self, index: int) -> Video:
        if not 0 <= index < self.RESOLUTION:
            raise IndexError(index)
        for source, low, high in zip(self.sources, self.bounds, self.bounds[1:]):
            if index < high:
                return source[(index - low) * len(source) // (high - low)]
        raise IndexError(index)
