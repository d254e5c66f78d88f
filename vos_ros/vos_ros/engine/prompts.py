"""Box and click prompts -> a label map of new objects (checked input, one prompt-head pass)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vos_ros.engine.errors import InvalidPromptError
from vos_ros.model.prompt import Prompt, PromptModel, build_prompt_model

_MODELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class PromptResult:
    """The ids given to the new objects (prompt order) and the mask made for them (uint16, image size)."""

    ids: list[int]
    label_map: np.ndarray


def shared_prompt_model(network) -> PromptModel:
    """One prompt model per network object (built on first use, with the shipped head weights)."""
    model = _MODELS.get(network)
    if model is None:
        model = build_prompt_model(network)
        _MODELS[network] = model
    return model


def check_prompts(boxes, points, point_labels, size: tuple[int, int]) -> list[Prompt]:
    """Validated prompts in image pixels.

    ``boxes`` is K x 4 (x0, y0, x1, y1); a box partly outside the image is clipped, one wholly
    outside is refused. ``points`` is None or a sequence with one entry per object (None or
    N x 2 array of x, y); ``point_labels`` the same shape, 1/True positive, 0/False negative
    (default positive). Points must lie in the image.
    """
    height, width = size
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidPromptError("boxes must be numbers: K x 4 (x0, y0, x1, y1)") from None
    if array.ndim == 1 and array.size == 4:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 4 or len(array) == 0:
        raise InvalidPromptError(f"boxes must be K x 4 (x0, y0, x1, y1) with K >= 1, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InvalidPromptError("boxes hold a NaN or infinite coordinate")
    clicks: list[list[tuple[float, float, bool]]] = [[] for _ in array]
    if points is not None:
        if len(points) > len(array):
            raise InvalidPromptError(
                f"points are given for {len(points)} objects but there are {len(array)} boxes: "
                f"points of object {len(array)} and above name no box"
            )
        if point_labels is not None and len(point_labels) != len(points):
            raise InvalidPromptError(f"{len(point_labels)} point label lists for {len(points)} point lists")
        for index, object_points in enumerate(points):
            if object_points is None or len(object_points) == 0:
                continue
            xy = np.asarray(object_points, dtype=np.float64).reshape(-1, 2)
            flags = (
                np.ones(len(xy), dtype=bool)
                if point_labels is None or point_labels[index] is None
                else np.asarray(point_labels[index]).reshape(-1)
            )
            if len(flags) != len(xy):
                raise InvalidPromptError(f"object {index}: {len(flags)} point labels for {len(xy)} points")
            for (x, y), flag in zip(xy, flags):
                if not (np.isfinite(x) and np.isfinite(y) and 0 <= x <= width and 0 <= y <= height):
                    raise InvalidPromptError(
                        f"object {index}: point ({x:g}, {y:g}) is outside the {width}x{height} image"
                    )
                clicks[index].append((float(x), float(y), bool(flag)))
    prompts = []
    for index, (x0, y0, x1, y1) in enumerate(array):
        if x1 <= x0 or y1 <= y0:
            raise InvalidPromptError(
                f"box {index} ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is empty or inverted: need x1 > x0, y1 > y0"
            )
        cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
        if cx1 - cx0 < 1 or cy1 - cy0 < 1:
            raise InvalidPromptError(
                f"box {index} ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is outside the {width}x{height} image"
            )
        prompts.append(Prompt((cx0, cy0, cx1, cy1), tuple(clicks[index])))
    return prompts


def _scaled(prompt: Prompt, sx: float, sy: float) -> Prompt:
    x0, y0, x1, y1 = prompt.box
    return Prompt((x0 * sx, y0 * sy, x1 * sx, y1 * sy), tuple((x * sx, y * sy, p) for x, y, p in prompt.clicks))


def prompt_label_map(
    model: PromptModel, rgb: torch.Tensor, prompts: Sequence[Prompt], size: tuple[int, int], ids: Sequence[int]
) -> np.ndarray:
    """Label map (uint16, ``size``) with ``ids[k]`` where object k wins the softmax, 0 elsewhere.

    ``rgb`` is the frame at the model's scale. An object that wins no pixel gets the pixels of
    its box where its own probability is highest (so every prompt yields an object).
    """
    height, width = size
    sx, sy = rgb.shape[-1] / width, rgb.shape[-2] / height
    probs = model.predict(rgb, [_scaled(p, sx, sy) for p in prompts])
    full = F.interpolate(probs[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    winner = full.argmax(0).cpu().numpy()
    lut = np.array([0, *ids], dtype=np.uint16)
    label_map = lut[winner]
    for k, prompt in enumerate(prompts):
        if (winner == k + 1).any():
            continue
        x0, y0, x1, y1 = (
            int(v) for v in (prompt.box[0], prompt.box[1], np.ceil(prompt.box[2]), np.ceil(prompt.box[3]))
        )
        window = full[k + 1, y0:y1, x0:x1].cpu().numpy()
        best = window >= max(0.5 * window.max(), 1e-6)
        label_map[y0:y1, x0:x1][best] = ids[k]
    for k, prompt in enumerate(prompts):  # a later fallback may have covered an earlier one: keep one pixel
        if not (label_map == ids[k]).any():
            x0, y0, x1, y1 = prompt.box
            label_map[min(height - 1, int((y0 + y1) / 2)), min(width - 1, int((x0 + x1) / 2))] = ids[k]
    return label_map
