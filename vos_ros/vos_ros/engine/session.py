"""A segmentation session: the state of one video stream over a shared network."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vos_ros.engine.errors import (
    InvalidImageError,
    InvalidMaskError,
    InvalidPromptError,
    NotInitializedError,
    TooManyObjectsError,
    UnknownObjectError,
    VosError,
)
from vos_ros.engine.fragments import FragmentFilter
from vos_ros.engine.memory import ReferenceMemory
from vos_ros.engine.objects import MAX_OBJECT_ID, ObjectManager
from vos_ros.engine.prompts import PromptResult, check_prompts, prompt_label_map, shared_prompt_model
from vos_ros.engine.result import FrameResult, ObjectResult
from vos_ros.engine.state import (
    STATE_FORMAT,
    STATE_VERSION,
    TENSOR_FIELDS,
    SessionState,
    StateError,
    check_identity,
    network_identity,
    tensor_to_array,
    validate,
)
from vos_ros.model.network import EncodedFrame, Reference, VosNetwork
from vos_ros.model.profiling import stage

MIN_IMAGE_SIDE = 16

Labels = Sequence[str] | Mapping[int, str] | None


@functools.lru_cache(maxsize=4)
def _pixel_coordinates(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flattened row and column index of every pixel (cached per image size)."""
    ys, xs = np.indices(shape)
    return ys.ravel(), xs.ravel()


@dataclass
class _SlotStatistics:
    """Per slot: pixel count, summed confidence, summed column / row, first and last row and column."""

    area: np.ndarray
    score_sum: np.ndarray
    sum_x: np.ndarray
    sum_y: np.ndarray
    row0: np.ndarray
    row1: np.ndarray
    col0: np.ndarray
    col1: np.ndarray


def _slot_statistics(slots: np.ndarray, confidence: np.ndarray, count: int) -> _SlotStatistics:
    """Statistics of ``count`` slots of a slot map [H, W] in a fixed number of passes, whatever ``count``.

    Two histograms, pixels per (slot, row) and per (slot, column), give the areas, the coordinate
    sums and the boxes; no pass per slot.
    """
    height, width = slots.shape
    ys, xs = _pixel_coordinates(slots.shape)
    flat = slots.ravel().astype(np.intp)
    per_row = np.bincount(flat * height + ys, minlength=count * height).reshape(count, height)
    per_col = np.bincount(flat * width + xs, minlength=count * width).reshape(count, width)
    rows_hit, cols_hit = per_row > 0, per_col > 0
    return _SlotStatistics(
        area=per_row.sum(1),
        score_sum=np.bincount(flat, weights=confidence.ravel(), minlength=count),
        sum_x=per_col @ np.arange(width),
        sum_y=per_row @ np.arange(height),
        row0=rows_hit.argmax(1),
        row1=height - 1 - rows_hit[:, ::-1].argmax(1),
        col0=cols_hit.argmax(1),
        col1=width - 1 - cols_hit[:, ::-1].argmax(1),
    )


# OpenCV resizes arrays of at most this many channels (CV_CN_MAX).
_CV_MAX_CHANNELS = 512


def _upsampled_max(probs: torch.Tensor, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The best slot of every pixel of the probabilities [K+1, h, w] bilinearly upsampled to ``size``
    (half-pixel centres), and its probability: (confidence float32 [H, W], slots int32 [H, W]).

    On the CPU OpenCV upsamples pixel-interleaved channels and the max runs over the last axis, which
    took 5.0 ms instead of PyTorch's 7.9 ms for 6 slots at 854x480 (one thread); the two agree to 4e-6.
    """
    height, width = size
    if probs.device.type != "cpu" or probs.shape[0] > _CV_MAX_CHANNELS:
        with stage("upsampling"):
            full = F.interpolate(probs[None], size=size, mode="bilinear", align_corners=False)[0]
        with stage("post-processing"):
            confidence, slots = full.max(0)
            return confidence.cpu().numpy(), slots.to(torch.int32).cpu().numpy()
    with stage("upsampling"):
        interleaved = np.ascontiguousarray(probs.permute(1, 2, 0).numpy())
        full = cv2.resize(interleaved, (width, height), interpolation=cv2.INTER_LINEAR)
        if full.ndim == 2:  # OpenCV drops a single channel
            full = full[..., None]
    with stage("post-processing"):
        confidence, slots = torch.from_numpy(full).max(2)
        return confidence.numpy(), slots.to(torch.int32).numpy()


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


def _resized_reference(reference: Reference, size: tuple[int, int]) -> Reference:
    """The previous-frame reference on another grid (the input size changed): keys and instance
    embeddings resampled and re-normalised, soft labels resampled. Only the fields that the
    network reads from a previous frame are resampled."""

    def resample(tensor: torch.Tensor) -> torch.Tensor:
        return F.interpolate(tensor[None], size=size, mode="bilinear", align_corners=False)[0]

    frame = reference.frame
    key = F.normalize(resample(frame.key), dim=0)
    instance = key if frame.instance is frame.key else F.normalize(resample(frame.instance), dim=0)
    probs = resample(reference.probs)
    probs = probs / probs.sum(0, keepdim=True).clamp_min(1e-6)
    return Reference(EncodedFrame(key=key, instance=instance, skip=None, hidden=None), probs)


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
    drops the small detached pieces of an object that appear away from where it was. The input
    size may change mid-stream: the objects are carried over (the previous frame is resampled to
    the new grid; the anchors are matched at any size).
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
        self.memory.add_anchor(Reference(frame=frame.for_reference(), probs=probs))
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
            rgb = to_network_input(image, model.short_side, self.network.device)
            label_map = prompt_label_map(model, rgb, prompts, size, ids, image=image)
        self.set_mask(image, label_map, labels=dict(zip(ids, names)) if names else None, append=keep)
        return PromptResult(ids=ids, label_map=label_map)

    def reseed(self, image: np.ndarray, boxes: Mapping[int, Sequence[float]]) -> PromptResult:
        """Re-make the masks of tracked objects from boxes on ``image`` (id -> x0, y0, x1, y1).

        The objects keep their ids and labels; the new masks seed tracking as ``set_mask`` with
        ``append=True`` does. UnknownObjectError for an id not tracked; on error nothing changes.
        """
        check_image(image)
        if not boxes:
            raise InvalidPromptError("no boxes: give a box for each object to re-make")
        ids = [int(i) for i in boxes]
        unknown = [i for i in ids if i not in self.objects]
        if unknown:
            raise UnknownObjectError(f"not tracked: {unknown}; tracked ids are {self.object_ids}")
        prompts = check_prompts([boxes[i] for i in boxes], None, None, image.shape[:2])
        model = shared_prompt_model(self.network)
        with self._inference():
            rgb = to_network_input(image, model.short_side, self.network.device)
            label_map = prompt_label_map(model, rgb, prompts, image.shape[:2], ids, image=image)
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
        started = time.perf_counter()
        empty = self._begin_step(image)
        if empty is not None:
            return empty
        with self._inference():
            with stage("preprocessing"):
                rgb = self._to_tensor(image)
            frame = self.network.encode(rgb)
        return self._finish_step(frame, image.shape[:2], started)

    def _begin_step(self, image: np.ndarray) -> FrameResult | None:
        """Check the frame and count it; the (all-background) result when no object is tracked, else None."""
        check_image(image)
        if not self.initialized:
            raise NotInitializedError("step() called before set_mask(): give the objects to track first")
        self.frame_index += 1
        if not self.objects.ids:
            labels = np.zeros(image.shape[:2], dtype=np.uint16)
            self._last_labels = labels
            return FrameResult(label_map=labels, objects=[], frame_index=self.frame_index)
        return None

    def _finish_step(self, frame: EncodedFrame, size: tuple[int, int], started: float) -> FrameResult:
        """Match an encoded frame against this session's memory: its labels and objects."""
        height, width = size
        with self._inference():
            if self.memory.previous.frame.size != frame.size:  # the input size changed mid-stream
                self.memory.previous = _resized_reference(self.memory.previous, frame.size)
            output = self.network.segment(frame, self.memory.anchors, self.memory.previous)
            with stage("post-processing"):
                probs = output.log_probs.float().exp()
                if self.fragment_filter is not None:
                    probs = self._drop_fragments(probs)
                self.memory.previous = Reference.pooled(frame.for_reference(), probs)
            confidence, slots = _upsampled_max(probs, (height, width))
        with stage("post-processing"):
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
        given = list(ids)
        try:
            ids = sorted({int(i) for i in given})
        except (TypeError, ValueError):
            raise UnknownObjectError(f"object ids must be integers, got {given!r}") from None
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

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(height, width) of the frames the session works on now (None before a mask)."""
        return None if self._last_labels is None else tuple(self._last_labels.shape)

    def state(self) -> SessionState:
        """The tracking state as plain arrays + a JSON-able dict (see vos_ros.engine.state).

        ``Session.from_state(network, session.state())`` continues exactly where this session is:
        its next frame gives the same output. Raises NotInitializedError before a mask.
        """
        if not self.initialized:
            raise NotInitializedError("no state before set_mask(): there is nothing tracked")
        arrays: dict[str, np.ndarray] = {"last_labels": self._last_labels.astype(np.uint16, copy=True)}

        def describe(reference: Reference, name: str) -> dict:
            frame = reference.frame
            arrays[f"{name}.probs"] = tensor_to_array(reference.probs)
            arrays[f"{name}.key"] = tensor_to_array(frame.key)
            if frame.skip is not None:
                arrays[f"{name}.skip"] = tensor_to_array(frame.skip)
            if frame.instance is not frame.key:
                arrays[f"{name}.instance"] = tensor_to_array(frame.instance)
            if frame.hidden is not None:
                arrays[f"{name}.hidden"] = tensor_to_array(frame.hidden)
            return {
                "name": name,
                "foreground_only": bool(reference.foreground_only),
                "key": "array",
                "instance": "key" if frame.instance is frame.key else "array",
                "skip": None if frame.skip is None else "array",
                "hidden": None if frame.hidden is None else "array",
            }

        anchors = [describe(anchor, f"anchor{i}") for i, anchor in enumerate(self.memory.anchors)]
        previous_anchor = next((i for i, a in enumerate(self.memory.anchors) if a is self.memory.previous), None)
        previous = None if previous_anchor is not None else describe(self.memory.previous, "previous")
        meta = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "saved_at": time.time(),
            "network": network_identity(self.network),
            "short_side": self.short_side,
            "frame_size": list(self._last_labels.shape),
            "frame_index": self.frame_index,
            "objects": [
                {"id": i, "label": self.objects.label(i), "added": self.objects.added_at(i)} for i in self.objects.ids
            ],
            "anchors": anchors,
            "previous": previous,
            "previous_anchor": previous_anchor,
        }
        return SessionState(meta=meta, arrays=arrays)

    @classmethod
    def from_state(cls, network: VosNetwork, state: SessionState, **options) -> Session:
        """A session over ``network`` that continues from ``state`` (``options`` as for ``Session()``).

        Raises StateError when the state is malformed or was written by another config, other
        weights or at another short side, or holds more objects than ``max_objects``.
        """
        validate(state)
        session = cls(network, **options)
        check_identity(state, network, session.short_side)
        meta = state.meta
        if len(meta["objects"]) > session.max_objects:
            raise StateError(f"the state tracks {len(meta['objects'])} objects, max_objects is {session.max_objects}")
        device = network.device

        def tensor(name: str) -> torch.Tensor:
            return torch.from_numpy(np.array(state.arrays[name], copy=True)).to(device)

        def reference(ref: dict) -> Reference:
            name = ref["name"]
            fields = {f: tensor(f"{name}.{f}") if ref[f] == "array" else None for f in TENSOR_FIELDS}
            if ref["instance"] == "key":
                fields["instance"] = fields["key"]
            return Reference(
                frame=EncodedFrame(**fields), probs=tensor(f"{name}.probs"), foreground_only=ref["foreground_only"]
            )

        anchors = [reference(ref) for ref in meta["anchors"]]
        index = meta.get("previous_anchor")
        if meta["previous"] is None and not (isinstance(index, int) and 0 <= index < len(anchors)):
            raise StateError(f"the state's previous frame refers to anchor {index!r} of {len(anchors)}")
        session.memory.anchors = anchors[-session.memory.max_anchors :]
        session.memory.previous = anchors[index] if meta["previous"] is None else reference(meta["previous"])
        for obj in meta["objects"]:
            session.objects.add({int(obj["id"]): str(obj["label"])}, int(obj["added"]))
        session.frame_index = int(meta["frame_index"])
        session._last_labels = np.array(state.arrays["last_labels"], dtype=np.uint16, copy=True)
        return session

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
        if self._last_labels is None:
            return label_map
        if self._last_labels.shape != size:  # the input size changed since the last frame
            self._last_labels = cv2.resize(self._last_labels, size[::-1], interpolation=cv2.INTER_NEAREST)
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
        stats = _slot_statistics(slots, confidence, count)
        results = []
        for slot, object_id in enumerate(self.objects.ids, start=1):
            pixels = int(stats.area[slot])
            bbox, centroid, score = (0, 0, 0, 0), (float("nan"), float("nan")), 0.0
            if pixels:
                x0, y0, x1, y1 = (int(v[slot]) for v in (stats.col0, stats.row0, stats.col1, stats.row1))
                bbox = (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
                centroid = (float(stats.sum_x[slot] / pixels), float(stats.sum_y[slot] / pixels))
                score = float(stats.score_sum[slot] / pixels)
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


def step_sessions(sessions: Sequence[Session], images: Sequence[np.ndarray]) -> list[FrameResult | VosError]:
    """The next frame of each of several sessions that share one network (one camera each), in one call.

    The frames whose network inputs have the same size go through the backbone and embedding heads as
    one batch; each session then matches its frame against its own memory, as :meth:`Session.step` does
    (same results up to float rounding). A session's problem (bad image, no mask yet) is its own: its
    entry is the VosError and the other sessions go on. ``model_ms`` of each result is the time from the
    start of the call to that session's result (the shared batch included).
    """
    if len(sessions) != len(images):
        raise ValueError(f"{len(sessions)} sessions but {len(images)} images")
    if len({id(session) for session in sessions}) != len(sessions):
        raise ValueError("a session may take only one frame per call")
    if sessions and any(session.network is not sessions[0].network for session in sessions):
        raise ValueError("step_sessions batches sessions of one network; these use several")
    started = time.perf_counter()
    results: list[FrameResult | VosError | None] = [None] * len(sessions)
    groups: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}
    if not sessions:
        return []
    network = sessions[0].network
    with sessions[0]._inference():
        for index, (session, image) in enumerate(zip(sessions, images)):
            try:
                results[index] = session._begin_step(image)
            except VosError as error:
                results[index] = error
                continue
            if results[index] is None:
                tensor = session._to_tensor(image)
                groups.setdefault(tuple(tensor.shape), []).append((index, tensor))
        for members in groups.values():
            batch = torch.cat([tensor for _, tensor in members])
            frames = network.encode_features(network.backbone(batch))
            for (index, _), frame in zip(members, frames):
                results[index] = sessions[index]._finish_step(frame, images[index].shape[:2], started)
    return results
