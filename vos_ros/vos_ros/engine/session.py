"""A segmentation session: the state of one video stream over a shared network."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable, Mapping, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vos_ros.engine.errors import (
    InvalidImageError,
    InvalidMaskError,
    NotInitializedError,
    TooManyObjectsError,
    UnknownObjectError,
)
from vos_ros.engine.fragments import FragmentFilter
from vos_ros.engine.memory import ReferenceMemory
from vos_ros.engine.objects import ObjectManager
from vos_ros.engine.prompts import PromptResult, check_prompts, prompt_label_map, shared_prompt_model
from vos_ros.engine.result import FrameResult, ObjectResult
from vos_ros.model.network import Reference, VosNetwork

MAX_OBJECT_ID = 65535
MIN_IMAGE_SIDE = 16

Labels = Sequence[str] | Mapping[int, str] | None


@functools.lru_cache(maxsize=4)
def _pixel_coordinates(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flattened row and column index of every pixel (cached per image size)."""
    ys, xs = np.indices(shape)
    return ys.ravel(), xs.ravel()


def check_image(image: np.ndarray) -> None:
    """Raise InvalidImageError unless ``image`` is an HxWx3 uint8 array of a usable size."""
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidImageError(f"image must be HxWx3 RGB, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise InvalidImageError(f"image must be uint8, got {image.dtype}")
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        raise InvalidImageError(
            f"image must be at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} px, got {image.shape[1]}x{image.shape[0]}"
        )


def to_network_input(image: np.ndarray, short_side: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """An RGB uint8 image resized to ``short_side`` as a [1, 3, H, W] float tensor in [0, 1]."""
    height, width = image.shape[:2]
    scale = short_side / min(height, width)
    size = (max(MIN_IMAGE_SIDE, round(width * scale)), max(MIN_IMAGE_SIDE, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, size, interpolation=interpolation) if size != (width, height) else image
    if not resized.flags.writeable:
        resized = resized.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(resized)).to(device)
    return tensor.permute(2, 0, 1)[None].float() / 255.0


class Session:
    """Tracks the objects of one stream: ``set_mask`` once, then ``step`` every frame.

    Any number of sessions may share one network. A session is not thread-safe: callers that
    use it from several threads serialise the calls. ``fragment_filter`` (None to switch it off)
    drops the small detached pieces of an object that appear away from where it was.
    """

    def __init__(
        self,
        network: VosNetwork,
        max_objects: int = 64,
        lost_threshold: float = 0.3,
        short_side: int | None = None,
        fragment_filter: FragmentFilter | None = FragmentFilter(),
    ) -> None:
        if not 1 <= max_objects <= MAX_OBJECT_ID:
            raise ValueError(f"max_objects must be in [1, {MAX_OBJECT_ID}], got {max_objects}")
        self.network = network
        self.max_objects = max_objects
        self.lost_threshold = lost_threshold
        self.short_side = short_side or network.config.short_side
        self.fragment_filter = fragment_filter
        self.objects = ObjectManager()
        self.memory = ReferenceMemory(network.config.max_anchors)
        self.frame_index = 0
        self._last_labels: np.ndarray | None = None
        self._last_boxes: dict[int, tuple[float, float, float, float]] = {}
        self._last_scores: dict[int, float] = {}

    @property
    def object_ids(self) -> list[int]:
        """Tracked object ids, ascending."""
        return sorted(self.objects.ids)

    @property
    def initialized(self) -> bool:
        """True once a mask was given (and no reset since)."""
        return self.memory.previous is not None

    def set_mask(
        self, image: np.ndarray, label_map: np.ndarray, labels: Labels = None, append: bool = False
    ) -> list[int]:
        """Give the objects of ``image``: ``label_map`` holds 0 for background, k for object k.

        ``append=False`` replaces every tracked object; ``append=True`` adds the mask's ids to
        the tracked set (an id already tracked takes the new mask). ``labels`` names the
        objects: a sequence aligned with the sorted ids of the mask, or a mapping id -> name.
        Returns the mask's ids. On error nothing changes.
        """
        check_image(image)
        ids = self._check_label_map(label_map, image.shape[:2], append)
        names = self._label_names(ids, labels)
        if append and self.initialized:
            merged = self._merge_with_last(label_map, ids, image.shape[:2])
        else:
            merged = label_map
            self._clear()
        new = self.objects.add(names, self.frame_index)
        self.memory.add_objects(len(new))
        with self._inference():
            frame = self.network.encode(self._to_tensor(image))
            probs = self._one_hot(self.objects.ids_to_slots(merged), frame.size)
        self.memory.add_anchor(Reference(frame=frame, probs=probs))
        self._last_labels = self.objects.slot_to_id()[self.objects.ids_to_slots(merged)]
        for object_id in ids:
            rows, cols = np.nonzero(self._last_labels == object_id)
            if len(rows):
                self._last_boxes[object_id] = (
                    float(cols.min()),
                    float(rows.min()),
                    float(cols.max() + 1),
                    float(rows.max() + 1),
                )
            self._last_scores[object_id] = 1.0
        return ids

    def add_objects(
        self,
        image: np.ndarray,
        boxes,
        points=None,
        point_labels=None,
        labels: Sequence[str] | None = None,
        append: bool = True,
    ) -> PromptResult:
        """Start tracking one new object per box of ``image`` (the prompt head makes their masks).

        ``boxes`` is K x 4 (x0, y0, x1, y1, pixels); ``points`` optionally gives clicks per object
        (a sequence aligned with the boxes, each N x 2 x, y or None) and ``point_labels`` their
        polarity (1 positive, 0 negative; default positive). ``labels`` names the K objects.
        ``append=True`` keeps the tracked objects (new ids follow the largest tracked id; the new
        masks take over the pixels they cover), ``append=False`` replaces them (ids 1..K). The
        masks then seed tracking exactly as ``set_mask`` does. Returns the new ids (box order)
        and the label map of the new objects. On error (InvalidPromptError, TooManyObjectsError,
        InvalidImageError, InvalidMaskError) nothing changes.
        """
        check_image(image)
        size = image.shape[:2]
        prompts = check_prompts(boxes, points, point_labels, size)
        names = [] if labels is None else [str(name) for name in labels]
        if names and len(names) != len(prompts):
            raise InvalidMaskError(f"{len(names)} labels for {len(prompts)} boxes: give one per box, or none")
        keep = append and self.initialized
        total = len(prompts) + (len(self.objects) if keep else 0)
        if total > self.max_objects:
            raise TooManyObjectsError(f"{total} objects exceed the limit of {self.max_objects}")
        first = max(self.objects.ids, default=0) + 1 if keep else 1
        ids = list(range(first, first + len(prompts)))
        if ids[-1] > MAX_OBJECT_ID:
            raise TooManyObjectsError(f"object ids must be in 1..{MAX_OBJECT_ID}, the new ones would reach {ids[-1]}")
        model = shared_prompt_model(self.network)
        with self._inference():
            label_map = prompt_label_map(
                model, to_network_input(image, model.short_side, self.network.device), prompts, size, ids
            )
        self.set_mask(image, label_map, labels=dict(zip(ids, names)) if names else None, append=keep)
        return PromptResult(ids=ids, label_map=label_map)

    def reseed(self, image: np.ndarray, boxes: Mapping[int, Sequence[float]]) -> PromptResult:
        """Re-make the masks of tracked objects from boxes on ``image`` (id -> x0, y0, x1, y1).

        The objects keep their ids and labels; the new masks seed tracking as ``set_mask`` with
        ``append=True`` does. UnknownObjectError for an id not tracked; on error nothing changes.
        """
        check_image(image)
        ids = [int(i) for i in boxes]
        unknown = [i for i in ids if i not in self.objects]
        if unknown or not ids:
            raise UnknownObjectError(f"not tracked: {unknown}; tracked ids are {self.object_ids}")
        prompts = check_prompts([boxes[i] for i in boxes], None, None, image.shape[:2])
        model = shared_prompt_model(self.network)
        with self._inference():
            rgb = to_network_input(image, model.short_side, self.network.device)
            label_map = prompt_label_map(model, rgb, prompts, image.shape[:2], ids)
        self.set_mask(image, label_map, labels={i: self.objects.label(i) for i in ids}, append=True)
        return PromptResult(ids=ids, label_map=label_map)

    def tracked_boxes(self) -> dict[int, tuple[float, float, float, float]]:
        """Where each tracked object was last seen: box (x0, y0, x1, y1, pixel edges) by id."""
        return {i: self._last_boxes[i] for i in self.objects.ids if i in self._last_boxes}

    def last_scores(self) -> dict[int, float]:
        """Each tracked object's score in the last frame (1.0 on the frame its mask was given)."""
        return {i: self._last_scores.get(i, 0.0) for i in self.objects.ids}

    def step(self, image: np.ndarray) -> FrameResult:
        """Segment the next frame of the stream."""
        check_image(image)
        if not self.initialized:
            raise NotInitializedError("step() called before set_mask(): give the objects to track first")
        self.frame_index += 1
        started = time.perf_counter()
        height, width = image.shape[:2]
        if not self.objects.ids:
            labels = np.zeros((height, width), dtype=np.uint16)
            self._last_labels = labels
            return FrameResult(label_map=labels, objects=[], frame_index=self.frame_index)
        with self._inference():
            frame = self.network.encode(self._to_tensor(image))
            output = self.network.segment(frame, self.memory.anchors, self.memory.previous)
            probs = output.log_probs.float().exp()
            if self.fragment_filter is not None:
                probs = self._drop_fragments(probs)
            self.memory.previous = Reference.pooled(frame, probs)
            full = F.interpolate(probs[None], size=(height, width), mode="bilinear", align_corners=False)[0]
            confidence, slots = full.max(0)
            slots = slots.to(torch.int32).cpu().numpy()
            confidence = confidence.cpu().numpy()
        labels = self.objects.slot_to_id()[slots]
        self._last_labels = labels
        objects = self._describe(slots, confidence)
        for obj in objects:
            self._last_scores[obj.id] = obj.score
            if obj.area:
                x, y, w, h = obj.bbox
                self._last_boxes[obj.id] = (float(x), float(y), float(x + w), float(y + h))
        elapsed = (time.perf_counter() - started) * 1000.0
        return FrameResult(label_map=labels, objects=objects, frame_index=self.frame_index, model_ms=elapsed)

    def remove(self, ids: Iterable[int]) -> list[int]:
        """Stop tracking ``ids`` (UnknownObjectError if one is not tracked); returns them."""
        ids = sorted({int(i) for i in ids})
        unknown = [i for i in ids if i not in self.objects]
        if unknown:
            raise UnknownObjectError(f"not tracked: {unknown}; tracked ids are {self.object_ids}")
        self.memory.remove_slots(self.objects.remove(ids))
        for object_id in ids:
            self._last_boxes.pop(object_id, None)
            self._last_scores.pop(object_id, None)
        if self._last_labels is not None:
            self._last_labels = np.where(np.isin(self._last_labels, ids), 0, self._last_labels).astype(np.uint16)
        return ids

    def reset(self) -> None:
        """Forget every object and reference; the next call must be ``set_mask``."""
        self._clear()

    def _clear(self) -> None:
        self.objects.clear()
        self.memory.clear()
        self.frame_index = 0
        self._last_labels = None
        self._last_boxes = {}
        self._last_scores = {}

    def _check_label_map(self, label_map: np.ndarray, size: tuple[int, int], append: bool) -> list[int]:
        if not isinstance(label_map, np.ndarray) or label_map.ndim != 2:
            raise InvalidMaskError(f"label map must be a 2-D array, got {getattr(label_map, 'shape', type(label_map))}")
        if not (np.issubdtype(label_map.dtype, np.integer) or label_map.dtype == np.bool_):
            raise InvalidMaskError(f"label map must hold integers, got {label_map.dtype}")
        if label_map.shape != size:
            raise InvalidMaskError(
                f"label map is {label_map.shape[1]}x{label_map.shape[0]} but the image is {size[1]}x{size[0]}"
            )
        ids = [int(v) for v in np.unique(label_map) if v != 0]
        if not ids:
            raise InvalidMaskError("label map is empty: no pixel has an object id > 0")
        if ids[0] < 0 or ids[-1] > MAX_OBJECT_ID:
            raise TooManyObjectsError(f"object ids must be in 1..{MAX_OBJECT_ID}, got {ids[0]}..{ids[-1]}")
        total = len(set(ids) | set(self.objects.ids)) if append else len(ids)
        if total > self.max_objects:
            raise TooManyObjectsError(f"{total} objects exceed the limit of {self.max_objects}")
        return ids

    @staticmethod
    def _label_names(ids: list[int], labels: Labels) -> dict[int, str]:
        if labels is None:
            return dict.fromkeys(ids, "")
        if isinstance(labels, Mapping):
            extra = sorted(set(labels) - set(ids))
            if extra:
                raise InvalidMaskError(f"labels given for ids {extra} that are not in the mask")
            return {i: str(labels.get(i, "")) for i in ids}
        if len(labels) not in (0, len(ids)):
            raise InvalidMaskError(f"{len(labels)} labels for {len(ids)} objects {ids}: give one per id, in id order")
        return {i: str(name) for i, name in zip(ids, labels)} if labels else dict.fromkeys(ids, "")

    def _merge_with_last(self, label_map: np.ndarray, ids: list[int], size: tuple[int, int]) -> np.ndarray:
        """The new mask over the last prediction of the other tracked objects."""
        if self._last_labels is None or self._last_labels.shape != size:
            return label_map
        previous = np.where(np.isin(self._last_labels, ids), 0, self._last_labels)
        return np.where(label_map != 0, label_map, previous)

    def _inference(self) -> contextlib.AbstractContextManager:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.network.device.type == "cuda":
            stack.enter_context(torch.autocast("cuda", dtype=torch.float16))
        return stack

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        return to_network_input(image, self.short_side, self.network.device)

    def _one_hot(self, slots: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """Soft labels [K+1, h, w] at stride 8 from a slot map at input resolution."""
        channels = len(self.objects) + 1
        tensor = torch.from_numpy(slots.astype(np.int64)).to(self.network.device)
        one_hot = F.one_hot(tensor, channels).permute(2, 0, 1).float()
        return F.adaptive_avg_pool2d(one_hot[None], size)[0]

    def _drop_fragments(self, probs: torch.Tensor) -> torch.Tensor:
        """Move the probability of each stray fragment (see FragmentFilter) to the background."""
        height, width = probs.shape[-2:]
        slots = probs.argmax(0)
        labels = self.objects.slot_to_id()[slots.to(torch.int32).cpu().numpy()]
        previous = cv2.resize(self._last_labels, (width, height), interpolation=cv2.INTER_NEAREST)
        stray = self.fragment_filter.stray(labels, previous)
        if not stray.any():
            return probs
        drop = F.one_hot(slots, probs.shape[0]).permute(2, 0, 1).bool() & torch.from_numpy(stray).to(probs.device)[None]
        drop[0] = False
        background = probs[0] + (probs * drop).sum(0)
        return torch.cat([background[None], probs[1:].masked_fill(drop[1:], 0.0)])

    def _describe(self, slots: np.ndarray, confidence: np.ndarray) -> list[ObjectResult]:
        count = len(self.objects) + 1
        flat = slots.ravel()
        area = np.bincount(flat, minlength=count)
        score_sum = np.bincount(flat, weights=confidence.ravel(), minlength=count)
        ys, xs = _pixel_coordinates(slots.shape)
        sum_x = np.bincount(flat, weights=xs, minlength=count)
        sum_y = np.bincount(flat, weights=ys, minlength=count)
        results = []
        for slot, object_id in enumerate(self.objects.ids, start=1):
            pixels = int(area[slot])
            bbox, centroid, score = (0, 0, 0, 0), (float("nan"), float("nan")), 0.0
            if pixels:
                mask = slots == slot
                rows = np.flatnonzero(mask.any(1))
                cols = np.flatnonzero(mask.any(0))
                bbox = (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
                centroid = (float(sum_x[slot] / pixels), float(sum_y[slot] / pixels))
                score = float(score_sum[slot] / pixels)
            results.append(
                ObjectResult(
                    id=object_id,
                    label=self.objects.label(object_id),
                    score=score,
                    area=pixels,
                    bbox=bbox,
                    centroid=centroid,
                    visible=pixels > 0 and score >= self.lost_threshold,
                    age=self.frame_index - self.objects.added_at(object_id),
                )
            )
        return results
