"""Training clips: an anchor frame, then a run of frames to propagate through, with exact multi-object labels.

A clip is cut from one base video; the objects of 0-2 other videos (or of the base video
itself, for look-alike instances) are pasted on top, each moving with its own frames, so
every clip has 1-3 (or more, with multi-object sources) instances with exact masks. Some
pasted objects stay unlabelled: distractors (often twins of a tracked object) the network
must learn to leave in the background. Scale, crop and flips are applied consistently to
all frames. All randomness comes from the ``numpy.random.Generator`` passed in, so a clip
is a pure function of its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

ANCHOR, PREVIOUS, CURRENT = 0, 1, 2


class Video(Protocol):
    """What clips are cut from (``vos_ros.eval.davis.DavisSequence`` is one)."""

    def __len__(self) -> int: ...

    def image(self, index: int) -> np.ndarray: ...

    def annotation(self, index: int) -> np.ndarray: ...


@dataclass(frozen=True)
class ArrayVideo:
    """An in-memory video: T x H x W x 3 uint8 frames and T x H x W label maps."""

    frames: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    def image(self, index: int) -> np.ndarray:
        return self.frames[index]

    def annotation(self, index: int) -> np.ndarray:
        return self.labels[index]


@dataclass(frozen=True)
class ClipSpec:
    """How clips are drawn.

    ``short_side`` is the training scale (``NetworkConfig.training_scale``; frames are resized
    so that their short side matches it, times a jitter in ``scale_range``) and ``crop`` the
    (height, width) cut out of that, multiples of 16. ``length`` frames make a clip: the
    anchor, the given previous frame, then ``length - 2`` frames the network propagates
    through in time order.
    """

    short_side: int
    crop: tuple[int, int] = (256, 448)
    length: int = 3
    max_gap: int = 5
    scale_range: tuple[float, float] = (0.8, 1.2)
    paste_weights: tuple[float, ...] = (0.3, 0.4, 0.3)
    paste_scale: tuple[float, float] = (0.4, 1.0)
    twin_probability: float = 0.3
    distractor_probability: float = 0.25
    min_anchor_fraction: float = 0.004
    max_objects: int = 4
    prediction_probability: float = 0.5
    perturb_probability: float = 0.5

    def __post_init__(self) -> None:
        if any(side % 16 or side < 32 for side in self.crop):
            raise ValueError(f"crop sides must be multiples of 16 and >= 32, got {self.crop}")
        if self.max_gap < 1:
            raise ValueError(f"max_gap must be >= 1, got {self.max_gap}")
        if not 0.0 <= self.distractor_probability <= 1.0:
            raise ValueError(f"distractor_probability must be in [0, 1], got {self.distractor_probability}")
        if self.length < 3:
            raise ValueError(f"a clip needs at least 3 frames (anchor, previous, current), got {self.length}")


@dataclass
class TrainingClip:
    """Frames [T, H, W, 3] uint8, labels [T, H, W] int64 in 0..K, and how to treat the previous mask.

    ``previous_labels`` is the (possibly dilated/eroded) previous mask given to the network
    when ``use_prediction`` is False; otherwise the network's own prediction replaces it.
    """

    frames: np.ndarray
    labels: np.ndarray
    previous_labels: np.ndarray
    use_prediction: bool

    @property
    def num_objects(self) -> int:
        return int(self.labels.max())


def pick_indices(length: int, rng: np.random.Generator, max_gap: int, count: int = 3) -> tuple[int, ...]:
    """``count`` frame indices: the anchor, then frames in time order (steps of 1..``max_gap``),
    the anchor no later than the first of them; maybe all time-reversed."""
    if length < count - 1:
        raise ValueError(f"a video needs at least {count - 1} frames to make clips, got {length}")
    gap = min(max_gap, (length - 1) // (count - 2))
    steps = rng.integers(1, gap + 1, size=count - 2)
    span = int(steps.sum())
    back = int(rng.integers(0, length - span))
    anchor = int(rng.integers(0, length - span - back))
    first = anchor + back
    indices = (anchor, first, *(first + int(offset) for offset in np.cumsum(steps)))
    if rng.random() < 0.5:
        indices = tuple(length - 1 - i for i in indices)
    return indices


def _warp(
    video: Video, indices: tuple[int, ...], matrix: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Frames and label maps of ``indices`` warped by the 2x3 ``matrix`` into ``size`` (h, w)."""
    height, width = size
    images, labels = [], []
    for index in indices:
        image, label = video.image(index), video.annotation(index)
        images.append(
            cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        )
        labels.append(
            cv2.warpAffine(label.astype(np.uint16), matrix, (width, height), flags=cv2.INTER_NEAREST, borderValue=0)
        )
    return np.stack(images), np.stack(labels).astype(np.int64)


def _centroid(mask: np.ndarray, fallback: tuple[float, float]) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return (float(xs.mean()), float(ys.mean())) if len(xs) else fallback


def _base_layer(video: Video, indices: tuple[int, ...], spec: ClipSpec, rng: np.random.Generator):
    """The base video scaled, cropped around its anchor objects (with jitter) and maybe flipped."""
    crop_h, crop_w = spec.crop
    first = video.annotation(indices[ANCHOR])
    height, width = first.shape
    scale = spec.short_side / min(height, width) * rng.uniform(*spec.scale_range)
    scale = max(scale, crop_h / height, crop_w / width)
    cx, cy = _centroid(first != 0, (width / 2, height / 2))
    cx = cx * scale + rng.uniform(-crop_w / 3, crop_w / 3)
    cy = cy * scale + rng.uniform(-crop_h / 3, crop_h / 3)
    x0 = float(np.clip(cx - crop_w / 2, 0, width * scale - crop_w))
    y0 = float(np.clip(cy - crop_h / 2, 0, height * scale - crop_h))
    matrix = np.array([[scale, 0.0, -x0], [0.0, scale, -y0]])
    return _warp(video, indices, matrix, spec.crop), scale


def _paste_layer(video: Video, indices: tuple[int, ...], spec: ClipSpec, scale: float, rng: np.random.Generator):
    """Another video's frames placed so that its anchor objects land at a random spot of the crop."""
    crop_h, crop_w = spec.crop
    first = video.annotation(indices[ANCHOR])
    height, width = first.shape
    scale = scale * rng.uniform(*spec.paste_scale)
    cx, cy = _centroid(first != 0, (width / 2, height / 2))
    flip = rng.random() < 0.5
    target_x = rng.uniform(0.15, 0.85) * crop_w
    target_y = rng.uniform(0.15, 0.85) * crop_h
    sx = -scale if flip else scale
    matrix = np.array([[sx, 0.0, target_x - sx * cx], [0.0, scale, target_y - scale * cy]])
    return _warp(video, indices, matrix, spec.crop)


def _same_gaps(length: int, indices: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
    """Indices into another video with the same steps after the previous frame as ``indices`` (clamped)."""
    steps = np.abs(np.diff(indices[PREVIOUS:]))
    steps = np.minimum(steps, (length - 1) // len(steps))
    previous = int(rng.integers(0, length - int(steps.sum())))
    anchor = int(rng.integers(0, previous + 1))
    return (anchor, previous, *(previous + int(offset) for offset in np.cumsum(steps)))


def _relabel(labels: np.ndarray, spec: ClipSpec) -> np.ndarray:
    """Keep objects visible enough on the anchor frame (at most ``max_objects``), numbered 1..K."""
    counts = np.bincount(labels[ANCHOR].ravel(), minlength=int(labels.max()) + 1)
    minimum = spec.min_anchor_fraction * labels[ANCHOR].size
    keep = [i for i in range(1, len(counts)) if counts[i] >= minimum][: spec.max_objects]
    table = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    table[keep] = np.arange(1, len(keep) + 1)
    return table[labels]


def perturb_mask(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each object dilated or eroded by a random small kernel (objects re-stacked in id order)."""
    out = np.zeros_like(labels)
    for obj in range(1, int(labels.max()) + 1):
        mask = (labels == obj).astype(np.uint8)
        size = int(rng.integers(1, 6)) * 2 + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        mask = cv2.dilate(mask, kernel) if rng.random() < 0.5 else cv2.erode(mask, kernel)
        out[mask > 0] = obj
    return out


def make_training_clip(
    videos: Sequence[Video], spec: ClipSpec, rng: np.random.Generator, attempts: int = 20
) -> TrainingClip:
    """Draw one clip (retrying draws whose objects are not visible on the anchor frame)."""
    for _ in range(attempts):
        base = videos[int(rng.integers(len(videos)))]
        indices = pick_indices(len(base), rng, spec.max_gap, spec.length)
        (frames, labels), scale = _base_layer(base, indices, spec, rng)
        pastes = int(rng.choice(len(spec.paste_weights), p=np.asarray(spec.paste_weights) / sum(spec.paste_weights)))
        source = None
        for _ in range(pastes):
            if source is None or rng.random() >= spec.twin_probability:
                source = videos[int(rng.integers(len(videos)))]
                source_indices = _same_gaps(len(source), indices, rng)
            layer_frames, layer_labels = _paste_layer(source, source_indices, spec, scale, rng)
            offset = int(labels.max())
            inside = layer_labels > 0
            frames = np.where(inside[..., None], layer_frames, frames)
            distractor = spec.distractor_probability > 0 and rng.random() < spec.distractor_probability
            labels = np.where(inside, 0 if distractor else layer_labels + offset, labels)
        labels = _relabel(labels, spec)
        if labels.max() == 0:
            continue
        if rng.random() < 0.5:
            frames, labels = frames[:, :, ::-1], labels[:, :, ::-1]
        previous = labels[PREVIOUS]
        use_prediction = bool(rng.random() < spec.prediction_probability)
        if not use_prediction and rng.random() < spec.perturb_probability:
            previous = perturb_mask(previous, rng)
        return TrainingClip(
            frames=np.ascontiguousarray(frames),
            labels=np.ascontiguousarray(labels),
            previous_labels=np.ascontiguousarray(previous),
            use_prediction=use_prediction,
        )
    raise ValueError(f"no clip with a visible object in {attempts} draws: are the annotations empty?")
