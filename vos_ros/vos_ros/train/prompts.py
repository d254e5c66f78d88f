"""Training the prompt head on cached backbone features.

The backbone (the ``full`` network's, or the one stored with the head training starts from) is
frozen up to stride 8, so its features are computed once per training image
(``build_feature_cache``) and the small head trains on them (``train_prompt_head``), optionally
with the backbone's last blocks (stride 16), which run again on the cached stride-8 features.
Prompts are simulated per object: boxes jittered as a detector's or a person's would be (grown,
tight and noisy, shifted, partly cut), clicks as a person would place them (first near the
object's centre, corrections on the object or on the background inside the box). Images whose
mask has several large connected parts give multi-object samples (each part its own object,
competing in the softmax) and "union box" samples (a box over two parts, a negative click on the
one that is not the object).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vos_ros.engine.session import to_network_input
from vos_ros.eval.davis import DavisDataset
from vos_ros.eval.static import read_static_pair, static_items
from vos_ros.model.backbone import STRIDE16_BLOCKS, Backbone
from vos_ros.model.factory import build_network
from vos_ros.model.prompt import (
    BACKBONE_CONFIG,
    PROMPT_SHORT_SIDE,
    Prompt,
    PromptHead,
    backbone_digest,
    load_prompt_backbone,
    load_prompt_head,
    object_probabilities,
    save_prompt_head,
)

IGNORE = 255


@dataclass
class CachedImage:
    """Backbone features (fp16) of one image at its training scale, and its object mask at that scale."""

    features: dict[int, torch.Tensor]
    mask: np.ndarray
    source: str


def davis_items(root: str | Path, split: str, every: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image, binary mask) of every ``every``-th frame of the split's sequences."""
    dataset = DavisDataset(root)
    for name in dataset.split(split):
        sequence = dataset.sequence(name)
        for index in range(0, len(sequence), every):
            yield f"davis/{name}/{index:05d}", sequence.image(index), sequence.annotation(index) != 0


def _cache_one(backbone, image: np.ndarray, mask: np.ndarray, short_side: int, source: str) -> CachedImage:
    rgb = to_network_input(image, short_side)
    with torch.inference_mode():
        features = backbone(rgb)
    size = (rgb.shape[-1], rgb.shape[-2])
    small = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    small = small.astype(bool) if mask.dtype == np.bool_ else small
    return CachedImage({k: v.half().clone() for k, v in features.items()}, small, source)


def training_backbone(init: str | Path | None = None, network_weights: str | Path | None = None) -> Backbone:
    """The backbone a prompt head trains on: the one stored with the head ``init`` (when it stores one),
    else that of the ``full`` tracking weights ``network_weights`` (default: the shipped ones); in eval
    mode (its batch-norm statistics stay as they are). Giving both is an error: a head's backbone is
    the one it was trained on."""
    stored = load_prompt_backbone(init) if init is not None else None
    if stored is not None and network_weights is not None:
        raise ValueError(f"{init} stores the backbone its head was trained on; do not give tracking weights too")
    if stored is not None:
        return stored
    return build_network(BACKBONE_CONFIG, weights=network_weights, device="cpu").backbone.eval()


def build_feature_cache(
    static_root: str | Path | None,
    davis_root: str | Path | None,
    davis_split: str,
    path: str | Path,
    short_side: int = PROMPT_SHORT_SIDE,
    static_every: int = 1,
    davis_every: int = 10,
    composites: int = 0,
    composite_seed: int = 0,
    backbone: Backbone | None = None,
    log=print,
) -> list[CachedImage]:
    """Compute (or read back from ``path``) the ``backbone``'s features (default: the ``full`` network's) of
    every training image. A cache read back must have been computed by the same backbone."""
    path = Path(path)
    backbone = (backbone if backbone is not None else training_backbone()).eval()
    digest = backbone_digest(backbone)
    if path.is_file():
        saved = torch.load(path, weights_only=False)
        if isinstance(saved, list):  # written before caches recorded their backbone
            return saved
        if saved["backbone_sha256"] != digest:
            raise ValueError(f"feature cache {path} was computed by another backbone than this run's")
        return saved["items"]
    cache: list[CachedImage] = []
    started = time.perf_counter()
    if static_root is not None and static_every > 0:
        for name, image_path, mask_path in static_items(static_root, static_every):
            image, labels = read_static_pair(image_path, mask_path)
            mask = labels != 0
            cache.append(_cache_one(backbone, image, mask, short_side, name))
            if len(cache) % 250 == 0:
                log(f"cached {len(cache)} images in {time.perf_counter() - started:.0f} s")
    if davis_root is not None:
        for name, image, mask in davis_items(davis_root, davis_split, davis_every):
            cache.append(_cache_one(backbone, image, mask, short_side, name))
    if static_root is not None and composites:
        for name, image, labels in composite_items(static_root, composites, seed=composite_seed):
            cache.append(_cache_one(backbone, image, labels, short_side, name))
    log(f"cached {len(cache)} images in {time.perf_counter() - started:.0f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"backbone_sha256": digest, "items": cache}, path)
    return cache


# ---------------------------------------------------------------------------------------------
# Prompt simulation


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Tight box (x0, y0, x1, y1) of a non-empty mask, in pixel edges (x1, y1 exclusive)."""
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def jitter_box(
    box: tuple[float, float, float, float], size: tuple[int, int], rng: np.random.Generator
) -> tuple[float, float, float, float]:
    """A box as a detector or a person would draw it around ``box`` (clipped to the image)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    mode = rng.random()
    if mode < 0.35:  # loose
        d = rng.uniform(0.0, 0.15, size=4) * np.array([w, h, w, h])
        x0, y0, x1, y1 = x0 - d[0], y0 - d[1], x1 + d[2], y1 + d[3]
    elif mode < 0.7:  # tight and noisy
        d = rng.normal(0.0, 0.05, size=4) * np.array([w, h, w, h])
        x0, y0, x1, y1 = x0 + d[0], y0 + d[1], x1 + d[2], y1 + d[3]
    elif mode < 0.9:  # shifted and rescaled
        cx, cy = (x0 + x1) / 2 + rng.normal(0, 0.08) * w, (y0 + y1) / 2 + rng.normal(0, 0.08) * h
        s = rng.uniform(0.9, 1.2, size=2)
        x0, x1, y0, y1 = cx - w * s[0] / 2, cx + w * s[0] / 2, cy - h * s[1] / 2, cy + h * s[1] / 2
    else:  # one side cut
        side = rng.integers(4)
        cut = rng.uniform(0.1, 0.3)
        if side == 0:
            x0 += cut * w
        elif side == 1:
            x1 -= cut * w
        elif side == 2:
            y0 += cut * h
        else:
            y1 -= cut * h
    height, width = size
    x0, x1 = np.clip([x0, x1], 0, width)
    y0, y1 = np.clip([y0, y1], 0, height)
    if x1 - x0 < 2:
        x0, x1 = max(0.0, x0 - 1), min(float(width), x1 + 1)
    if y1 - y0 < 2:
        y0, y1 = max(0.0, y0 - 1), min(float(height), y1 + 1)
    return float(x0), float(y0), float(x1), float(y1)


def _pick(region: np.ndarray, rng: np.random.Generator, central: float = 0.0) -> tuple[float, float] | None:
    """A pixel of ``region`` away from its border (``central`` in [0, 1]: how deep inside, relative)."""
    if not region.any():
        return None
    depth = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    threshold = max(1.0, central * depth.max()) if central else min(3.0, depth.max())
    ys, xs = np.nonzero(depth >= threshold)
    if not len(ys):
        ys, xs = np.nonzero(region)
    i = rng.integers(len(ys))
    return float(xs[i]) + 0.5, float(ys[i]) + 0.5


def simulate_clicks(
    target: np.ndarray, box: tuple[float, float, float, float], rng: np.random.Generator, forced_negative=None
) -> tuple[tuple[float, float, bool], ...]:
    """None (box only), or a first click near the centre plus corrections on the object or background."""
    clicks = []
    if forced_negative is not None:
        point = _pick(forced_negative, rng, 0.3)
        if point:
            clicks.append((*point, False))
        if rng.random() < 0.5:
            point = _pick(target, rng, 0.5)
            if point:
                clicks.append((*point, True))
        return tuple(clicks)
    if rng.random() < 0.5:
        return ()
    point = _pick(target, rng, 0.6)
    if point:
        clicks.append((*point, True))
    x0, y0, x1, y1 = (round(v) for v in box)
    inside = np.zeros_like(target)
    inside[y0:y1, x0:x1] = True
    for _ in range(rng.integers(0, 3)):
        if rng.random() < 0.5:
            point, positive = _pick(target, rng), True
        else:
            point, positive = _pick(inside & ~target, rng), False
        if point:
            clicks.append((*point, positive))
    return tuple(clicks)


def sample_objects(mask: np.ndarray, rng: np.random.Generator) -> tuple[list[Prompt], np.ndarray]:
    """Prompts and the target label map (0 background, k object k, IGNORE unscored) for one image.

    ``mask`` is a bool mask (its large connected parts may become separate objects) or a label map of
    instances (uint8, 0 background; every instance may become an object).
    """
    size = mask.shape
    binary = mask.dtype == np.bool_
    if binary:
        _count, components, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        large = [i + 1 for i, a in enumerate(areas) if a >= max(0.01 * mask.size, 0.15 * areas.max())]
    else:
        components = mask
        large = [int(i) for i in np.unique(mask) if i != 0 and (mask == i).sum() >= 0.003 * mask.size]
    target = np.zeros(size, dtype=np.uint8)
    prompts: list[Prompt] = []
    if large and (not binary or (len(large) >= 2 and rng.random() < 0.5)):
        small = (components != 0) & ~np.isin(components, large)
        chosen = [c for c in large if rng.random() < 0.7] or [large[0]]
        others = [c for c in large if c not in chosen]
        if others and rng.random() < 0.4:  # a box over two parts, a negative click on the other one
            a, b = chosen[0], others[rng.integers(len(others))]
            part = components == a
            box = jitter_box(mask_box(part | (components == b)), size, rng)
            prompts.append(Prompt(box, simulate_clicks(part, box, rng, forced_negative=components == b)))
            target[part] = 1
            chosen = chosen[:1]
        else:
            for k, c in enumerate(chosen, start=1):
                part = components == c
                box = jitter_box(mask_box(part), size, rng)
                prompts.append(Prompt(box, simulate_clicks(part, box, rng)))
                target[part] = k
        target[small] = IGNORE
    else:
        mask = mask != 0
        box = jitter_box(mask_box(mask), size, rng)
        prompts.append(Prompt(box, simulate_clicks(mask, box, rng)))
        target[mask] = 1
    return prompts, target


def _noise_texture(rng: np.random.Generator, height: int, width: int, amplitude: float) -> np.ndarray:
    cell = int(rng.integers(4, 16))
    coarse = rng.normal(0.0, amplitude, size=(max(2, height // cell), max(2, width // cell), 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(rng.uniform(30, 225, 3).astype(np.float32) + smooth + rng.normal(0, 6, (height, width, 3)), 0, 255)


def _shape_mask(rng: np.random.Generator, size: tuple[int, int], scale: float) -> np.ndarray:
    height, width = size
    mask = np.zeros(size, np.uint8)
    cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
    hw, hh = rng.uniform(0.4, 1.0, 2) * scale * min(size) / 2
    kind = rng.integers(3)
    if kind == 0:
        cv2.ellipse(mask, (int(cx), int(cy)), (int(hw), int(hh)), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif kind == 1:
        cv2.rectangle(mask, (int(cx - hw), int(cy - hh)), (int(cx + hw), int(cy + hh)), 1, -1)
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 9))))
        radii = rng.uniform(0.5, 1.0, len(angles))
        pts = np.stack([cx + hw * radii * np.cos(angles), cy + hh * radii * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
    return mask.astype(bool)


def composite_items(static_root: str | Path, count: int, seed: int = 0) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Multi-object images with exact instance labels: 1-3 objects cut from the static photos (or textured
    shapes) pasted onto another photo (or a noise texture), later ones occluding earlier ones."""
    rng = np.random.default_rng(seed)
    items = list(static_items(static_root))
    for index in range(count):
        _, image_path, _ = items[rng.integers(len(items))]
        if rng.random() < 0.75:
            background = np.asarray(Image.open(image_path).convert("RGB")).astype(np.float32)
        else:
            background = _noise_texture(rng, 300, 400, rng.uniform(15, 60))
        height, width = background.shape[:2]
        labels = np.zeros((height, width), np.uint8)
        for k in range(1, int(rng.integers(1, 4)) + 1):
            if rng.random() < 0.6:
                _, source_path, mask_path = items[rng.integers(len(items))]
                source, source_labels = read_static_pair(source_path, mask_path)
                source, source_mask = source.astype(np.float32), source_labels != 0
                x0, y0, x1, y1 = (int(v) for v in mask_box(source_mask))
                cut, cut_mask = source[y0:y1, x0:x1], source_mask[y0:y1, x0:x1]
                scale = rng.uniform(0.25, 0.7) * height / max(1, y1 - y0)
                w, h = max(4, int((x1 - x0) * scale)), max(4, int((y1 - y0) * scale))
                w, h = min(w, width), min(h, height)
                cut = cv2.resize(cut, (w, h), interpolation=cv2.INTER_AREA)
                cut_mask = cv2.resize(cut_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
                left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
                region = np.zeros((height, width), bool)
                region[top : top + h, left : left + w] = cut_mask
                pasted = np.zeros_like(background)
                pasted[top : top + h, left : left + w] = cut
            else:
                region = _shape_mask(rng, (height, width), rng.uniform(0.25, 0.6))
                pasted = _noise_texture(rng, height, width, rng.uniform(10, 40))
            background[region] = pasted[region]
            labels[region] = k
        yield f"composite/{index:05d}", background.astype(np.uint8), labels


def prompt_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over background + objects, plus each object's soft IoU loss (logits at any scale)."""
    logits = F.interpolate(logits[None], size=target.shape, mode="bilinear", align_corners=False)[0]
    full = torch.cat([torch.zeros_like(logits[:1]), logits])
    ce = F.cross_entropy(full[None], target[None].long(), ignore_index=IGNORE)
    probs = object_probabilities(logits)[1:]
    valid = (target != IGNORE).float()
    ious = []
    for k in range(len(logits)):
        truth = (target == k + 1).float()
        p = probs[k] * valid
        inter = (p * truth).sum()
        union = (p + truth - p * truth).sum()
        ious.append(1.0 - (inter + 1.0) / (union + 1.0))
    return ce + torch.stack(ious).mean()


def train_prompt_head(
    cache: list[CachedImage],
    out: str | Path,
    steps: int,
    batch_size: int = 4,
    lr: float = 2e-3,
    seed: int = 0,
    davis_fraction: float = 0.25,
    init: str | Path | None = None,
    stop_at: int | None = None,
    width: int = 48,
    backbone: Backbone | None = None,
    tune_backbone_blocks: int = 0,
    backbone_lr_scale: float = 0.1,
    log=print,
) -> PromptHead:
    """Train a head (fresh, or from the weights ``init``) for ``steps`` steps of ``batch_size`` images;
    checkpoints and log go to ``out``. ``stop_at`` ends the run after that many steps (the learning-rate
    schedule still spans ``steps``). ``width`` sets a fresh head's channels (its skip path gets half).

    ``backbone`` (default :func:`training_backbone` of ``init``) must be the one that computed the cache;
    it is saved with the head. ``tune_backbone_blocks`` of its last blocks (at most the 6 after stride 8)
    train too, at ``backbone_lr_scale`` times the learning rate, on features recomputed from the
    cached stride-8 ones."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    head = PromptHead(width, width // 2) if init is None else load_prompt_head(init).train()
    backbone = (backbone if backbone is not None else training_backbone(init)).eval()
    if not 0 <= tune_backbone_blocks <= STRIDE16_BLOCKS:
        raise ValueError(f"tune_backbone_blocks must be in [0, {STRIDE16_BLOCKS}], got {tune_backbone_blocks}")
    tuned = backbone.freeze(tune_backbone_blocks)
    groups = [{"params": list(head.parameters()), "lr": lr}]
    if tuned:
        groups.append({"params": tuned, "lr": lr * backbone_lr_scale})
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
    )
    davis = [i for i, item in enumerate(cache) if item.source.startswith("davis/")]
    static = [i for i, item in enumerate(cache) if not item.source.startswith("davis/")]
    started = time.perf_counter()
    with (out / "train_log.jsonl").open("a") as log_file:
        for step in range(min(steps, stop_at or steps)):
            optimizer.zero_grad()
            total = 0.0
            for _ in range(batch_size):
                pool = davis if davis and (not static or rng.random() < davis_fraction) else static
                item = cache[pool[rng.integers(len(pool))]]
                if not item.mask.any():
                    continue
                prompts, target = sample_objects(item.mask, rng)
                features = item.features
                if tuned:
                    stride16 = backbone.stride16_from_stride8(features[8].float(), tune_backbone_blocks)
                    features = {**features, 16: stride16}
                shared = head.image_features(features)
                logits = head(shared, prompts, item.mask.shape)
                loss = prompt_loss(logits, torch.from_numpy(target)) / batch_size
                loss.backward()
                total += float(loss.detach())
            torch.nn.utils.clip_grad_norm_([*head.parameters(), *tuned], 5.0)
            optimizer.step()
            schedule.step()
            if step % 25 == 0 or step == steps - 1:
                record = {"step": step, "loss": total, "lr": schedule.get_last_lr()[0]}
                record["seconds"] = round(time.perf_counter() - started, 1)
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                log(json.dumps(record))
            if (step + 1) % 100 == 0 or step + 1 == min(steps, stop_at or steps):
                save_prompt_head(head, out / "prompt.pt", backbone, step=step + 1, seed=seed)
    return head.eval()
