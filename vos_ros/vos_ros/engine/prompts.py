"""Box and click prompts -> a label map of new objects (checked input, one prompt-head pass)."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vos_ros.engine.errors import InvalidPromptError
from vos_ros.model.prompt import REFINE_SIDE, REFINE_SURE, Prompt, PromptModel, build_prompt_model

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
            given = None if point_labels is None else point_labels[index]
            try:
                xy = np.asarray(object_points, dtype=np.float64)
                flags = None if given is None else np.asarray(given, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise InvalidPromptError(f"object {index}: points and point labels must be numbers") from None
            if xy.shape == (2,):  # one point given flat
                xy = xy[None]
            if xy.ndim != 2 or xy.shape[1] != 2:
                raise InvalidPromptError(f"object {index}: points must be N x 2 (x, y), got shape {xy.shape}")
            if flags is None:
                flags = np.ones(len(xy))
            if len(flags) != len(xy):
                raise InvalidPromptError(f"object {index}: {len(flags)} point labels for {len(xy)} points")
            if not np.isin(flags, (0.0, 1.0)).all():
                raise InvalidPromptError(f"object {index}: point labels must be 1 (positive) or 0 (negative)")
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


# Colour refinement (GrabCut started from the head's masks): each object's crop (its box grown by
# REFINE_MARGIN of its size) is segmented at most ``side`` pixels on its long side; the head's
# probability above ``sure`` (below 1 - ``sure``) fixes a pixel to the object (background), the
# rest is only a first guess; outside the box is background; a click fixes a disc of CLICK_RADIUS.
REFINE_MARGIN = 0.1
CLICK_RADIUS = 4
REFINE_SEED = 0  # the same prompt gives the same mask, whatever ran before


def refine_with_colour(
    image: np.ndarray,
    probs: np.ndarray,
    prompt: Prompt,
    iterations: int,
    side: int = REFINE_SIDE,
    sure: float = REFINE_SURE,
) -> np.ndarray:
    """One object's mask (bool, image size) refined by colour: OpenCV GrabCut with ``iterations``,
    started from the head's probabilities ``probs`` [H, W] of that object inside its box."""
    height, width = probs.shape
    x0, y0, x1, y1 = prompt.box
    margin_x, margin_y = REFINE_MARGIN * (x1 - x0), REFINE_MARGIN * (y1 - y0)
    cx0, cy0 = int(max(0.0, x0 - margin_x)), int(max(0.0, y0 - margin_y))
    cx1, cy1 = int(min(width, np.ceil(x1 + margin_x))), int(min(height, np.ceil(y1 + margin_y)))
    crop_h, crop_w = cy1 - cy0, cx1 - cx0
    scale = min(1.0, side / max(crop_h, crop_w))
    small = (max(8, round(crop_w * scale)), max(8, round(crop_h * scale)))
    sx, sy = small[0] / crop_w, small[1] / crop_h
    p = cv2.resize(np.ascontiguousarray(probs[cy0:cy1, cx0:cx1]), small, interpolation=cv2.INTER_LINEAR)
    init = np.where(p > 0.5, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    init[p > sure] = cv2.GC_FGD
    init[p < 1.0 - sure] = cv2.GC_BGD
    inside = np.zeros(init.shape, bool)
    inside[
        int((y0 - cy0) * sy) : int(np.ceil((y1 - cy0) * sy)), int((x0 - cx0) * sx) : int(np.ceil((x1 - cx0) * sx))
    ] = True
    init[~inside] = cv2.GC_BGD
    for x, y, positive in prompt.clicks:
        centre = (int((x - cx0) * sx), int((y - cy0) * sy))
        cv2.circle(init, centre, CLICK_RADIUS, int(cv2.GC_FGD if positive else cv2.GC_BGD), -1)
    guess = (init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)
    if guess.any() and not guess.all():
        crop = cv2.resize(image[cy0:cy1, cx0:cx1], small, interpolation=cv2.INTER_AREA)
        models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(REFINE_SEED)  # GrabCut's k-means draws from OpenCV's (per-thread) generator
        try:
            cv2.grabCut(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), init, None, *models, iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # a degenerate colour model: keep the head's mask
            pass
    refined = ((init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)).astype(np.float32)
    mask = np.zeros((height, width), bool)
    mask[cy0:cy1, cx0:cx1] = cv2.resize(refined, (crop_w, crop_h), interpolation=cv2.INTER_LINEAR) > 0.5
    return mask


def prompt_label_map(
    model: PromptModel,
    rgb: torch.Tensor,
    prompts: Sequence[Prompt],
    size: tuple[int, int],
    ids: Sequence[int],
    image: np.ndarray | None = None,
) -> np.ndarray:
    """Label map (uint16, ``size``) with ``ids[k]`` where object k wins the softmax, 0 elsewhere.

    ``rgb`` is the frame at the model's scale. With ``image`` (the frame, RGB uint8 of ``size``) and
    ``model.refine_iterations`` > 0 each object's mask is refined by colour (:func:`refine_with_colour`),
    and a pixel two refined masks claim goes to the object the head gave it to. An object that wins
    no pixel gets the pixels of its box where its own probability is highest (so every prompt yields
    an object).
    """
    height, width = size
    sx, sy = rgb.shape[-1] / width, rgb.shape[-2] / height
    probs = model.predict(rgb, [_scaled(p, sx, sy) for p in prompts])
    full = F.interpolate(probs[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    if image is not None and model.refine_iterations > 0:
        objects = full[1:].cpu().numpy()
        claims = np.stack(
            [
                refine_with_colour(image, objects[k], p, model.refine_iterations, model.refine_side, model.refine_sure)
                for k, p in enumerate(prompts)
            ]
        )
        claimed = np.where(claims, objects, -1.0)
        winner = np.where(claims.any(0), claimed.argmax(0) + 1, 0)
    else:
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
