"""Box -> mask accuracy of the prompt head on DAVIS frames, with GrabCut on the same boxes as baseline."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vos_ros.engine.prompts import prompt_label_map, shared_prompt_model
from vos_ros.engine.session import to_network_input
from vos_ros.eval.davis import DavisDataset, DavisError
from vos_ros.eval.metrics import db_eval_iou
from vos_ros.eval.static import read_static_pair, static_sets
from vos_ros.model.prompt import Prompt, PromptModel

# Each side of the true box moves out by this fraction of the box's width (height).
GROW = 0.05
# Standard deviation of each side's jitter, as a fraction of the box's width (height).
JITTER = 0.05
GRABCUT_ITERATIONS = 5


def gt_box(mask: np.ndarray, grow: float = GROW) -> tuple[float, float, float, float]:
    """The tight box of ``mask`` (pixel edges) with every side moved out by ``grow`` x its size, clipped."""
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    x0, y0, x1, y1 = float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)
    dx, dy = grow * (x1 - x0), grow * (y1 - y0)
    height, width = mask.shape
    return max(0.0, x0 - dx), max(0.0, y0 - dy), min(float(width), x1 + dx), min(float(height), y1 + dy)


def jittered_box(
    box: tuple[float, float, float, float], size: tuple[int, int], rng: np.random.Generator, sigma: float = JITTER
) -> tuple[float, float, float, float]:
    """``box`` with each side moved by N(0, sigma) x the box's size, clipped to the image (never empty)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    d = rng.normal(0.0, sigma, size=4) * np.array([w, h, w, h])
    height, width = size
    nx0, nx1 = np.clip([x0 + d[0], x1 + d[2]], 0, width)
    ny0, ny1 = np.clip([y0 + d[1], y1 + d[3]], 0, height)
    if nx1 - nx0 < 2 or ny1 - ny0 < 2:
        return box
    return float(nx0), float(ny0), float(nx1), float(ny1)


def grabcut_mask(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """OpenCV GrabCut initialised with ``box`` (RGB image), as a bool mask."""
    x0, y0, x1, y1 = (round(v) for v in box)
    rect = (x0, y0, max(1, x1 - x0), max(1, y1 - y0))
    mask = np.zeros(image.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means draws from OpenCV's generator: the same box, the same mask
    try:
        cv2.grabCut(
            cv2.cvtColor(image, cv2.COLOR_RGB2BGR), mask, rect, bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_RECT
        )
    except cv2.error:
        return np.zeros(image.shape[:2], bool)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def _davis_groups(davis_root: str | Path, sequences: Sequence[str], every: int) -> list[tuple[str, int, Iterator]]:
    dataset = DavisDataset(davis_root)
    opened = [dataset.sequence(name) for name in dict.fromkeys(sequences)]
    if not opened:
        raise DavisError("no sequences to evaluate")

    def frames(seq):
        for index in range(0, len(seq), every):
            yield index, seq.image(index), seq.annotation(index)

    return [(seq.name, len(range(0, len(seq), every)), frames(seq)) for seq in opened]


def _static_groups(static_root: str | Path, every: int, offset: int) -> list[tuple[str, int, Iterator]]:
    items: dict[str, list[tuple[int, tuple[Path, Path]]]] = {}
    start = 0  # photos are numbered across the sets (the box jitter is seeded by that number)
    for name, pairs in static_sets(static_root).items():
        if chosen := pairs[offset::every]:
            items[name] = list(enumerate(chosen, start=start))
            start += len(chosen)
    if not items:
        raise ValueError(f"{static_root}: no photos from offset {offset} with step {every}")

    def photos(pairs):
        for index, pair in pairs:
            yield (index, *read_static_pair(*pair))

    return [(name, len(pairs), photos(pairs)) for name, pairs in items.items()]


def evaluate_prompts(
    network,
    davis_root: str | Path | None,
    sequences: Sequence[str] = (),
    every: int = 10,
    grabcut: bool = True,
    seed: int = 0,
    progress: bool = True,
    model: PromptModel | None = None,
    static_root: str | Path | None = None,
    static_offset: int = 1,
) -> dict:
    """Mean IoU of box -> mask on frames 0, every, 2 x every, ... of each DAVIS sequence, or (with
    ``static_root`` instead of ``davis_root``) on photos ``static_offset``, ``static_offset + every``,
    ... of each set of a static folder (offset 1: photos the shipped head never saw, as it was
    trained on every second photo from 0).

    Two boxes per object and frame: the true box grown by GROW, and that box jittered (seeded
    per sequence and frame). All objects of a frame are prompted together. Per sequence (static
    set) the IoU is averaged over frames, objects and both box kinds; the means average those.
    """
    if static_root is not None:
        groups = _static_groups(static_root, every, static_offset)
    else:
        groups = _davis_groups(davis_root, sequences, every)
    model = model or shared_prompt_model(network)
    report: dict = {"sequences": {}, "every": every, "grow": GROW, "jitter": JITTER, "seed": seed}
    report.update(
        short_side=model.short_side,
        refine_iterations=model.refine_iterations,
        refine_side=model.refine_side,
        refine_sure=model.refine_sure,
    )
    prompt_ms: list[float] = []
    with tqdm(total=sum(g[1] for g in groups), unit="frame", disable=not progress, file=sys.stderr) as bar:
        for s_index, (name, _count, frames) in enumerate(groups):
            bar.set_description(name)
            ious = {"grown": [], "jittered": []}
            grab = {"grown": [], "jittered": []}
            for index, image, truth in frames:
                ids = [int(v) for v in np.unique(truth) if v != 0]
                if not ids:
                    bar.update(1)
                    continue
                rng = np.random.default_rng([seed, s_index, index])
                grown = [gt_box(truth == i) for i in ids]
                boxes = {"grown": grown, "jittered": [jittered_box(b, truth.shape, rng) for b in grown]}
                for kind, kind_boxes in boxes.items():
                    started = time.perf_counter()
                    rgb = to_network_input(image, model.short_side, network.device)
                    predicted = prompt_label_map(
                        model, rgb, [Prompt(b) for b in kind_boxes], truth.shape, ids, image=image
                    )
                    prompt_ms.append((time.perf_counter() - started) * 1000.0)
                    for object_id, box in zip(ids, kind_boxes):
                        ious[kind].append(db_eval_iou(truth == object_id, predicted == object_id))
                        if grabcut:
                            grab[kind].append(db_eval_iou(truth == object_id, grabcut_mask(image, box)))
                bar.update(1)
            if not ious["grown"]:
                continue
            entry = {
                "n_samples": len(ious["grown"]) + len(ious["jittered"]),
                "mean_iou": float(np.mean(ious["grown"] + ious["jittered"])),
                "mean_iou_grown": float(np.mean(ious["grown"])),
                "mean_iou_jittered": float(np.mean(ious["jittered"])),
            }
            if grabcut:
                entry["grabcut_mean_iou"] = float(np.mean(grab["grown"] + grab["jittered"]))
            report["sequences"][name] = entry
    entries = report["sequences"].values()
    for key in ("mean_iou", "mean_iou_grown", "mean_iou_jittered", "grabcut_mean_iou"):
        values = [e[key] for e in entries if key in e]
        report[key] = float(np.mean(values)) if values else None
    report["prompt_ms_median"] = float(np.median(prompt_ms)) if prompt_ms else None
    return report


def format_prompt_table(report: dict) -> str:
    """Per-sequence table (percent); the last line is 'mIoU x GrabCut y' (GrabCut '-' when not run)."""
    lines = [f"{'sequence':<24} {'samples':>7} {'grown':>6} {'jitter':>6} {'mIoU':>6} {'GrabCut':>7}"]

    def pct(value) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    for name, e in report["sequences"].items():
        lines.append(
            f"{name:<24} {e['n_samples']:>7} {pct(e['mean_iou_grown']):>6} {pct(e['mean_iou_jittered']):>6} "
            f"{pct(e['mean_iou']):>6} {pct(e.get('grabcut_mean_iou')):>7}"
        )
    lines.append(
        f"{'mean':<24} {'':>7} {pct(report['mean_iou_grown']):>6} {pct(report['mean_iou_jittered']):>6} "
        f"{pct(report['mean_iou']):>6} {pct(report['grabcut_mean_iou']):>7}"
    )
    if report["prompt_ms_median"] is not None:
        lines.append(f"prompt head: {report['prompt_ms_median']:.0f} ms per frame (median, backbone included)")
    lines.append(f"mIoU {pct(report['mean_iou'])} GrabCut {pct(report['grabcut_mean_iou'])}")
    return "\n".join(lines)
