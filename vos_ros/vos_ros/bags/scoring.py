"""Scoring recorded label images against a bag's ground truth, frames matched by header stamp.

The metric is the DAVIS one of :mod:`vos_ros.eval.metrics` (the code behind ``vos-ros-eval``):
every ground-truth frame of the bag is scored in stamp order, the first and the last excluded.
A ground-truth frame without a recorded label image counts as an all-background prediction;
those after the initial mask's frame (the frames the node had to answer) are counted as missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vos_ros.eval.metrics import SequenceEvaluator, summarize
from vos_ros.ros.convert import ImageConversionError, mask_to_labels
from vos_ros.ros.stamps import stamp_to_ns

from .bagfiles import BagError, BagReader, read_bag, require_topic
from .clip_bag import GROUND_TRUTH_TOPIC, INITIAL_MASK_TOPIC
from .typestore import IMAGE_TYPE


@dataclass(frozen=True)
class BagScore:
    """DAVIS scores of one replayed sequence and how many tracked frames lacked a prediction."""

    summary: dict
    object_ids: tuple[int, ...]
    frames: int  # ground-truth frames scored
    frames_tracked: int  # of those, the frames after the initial mask's frame
    frames_missing: int  # tracked frames without a recorded label image


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """The label map as uint8 when every id fits (halves the memory of kept frames)."""
    return labels.astype(np.uint8) if labels.size and int(labels.max()) < 256 else labels


def decode_labels(bag: BagReader, topic: str, msg) -> tuple[int, np.ndarray]:
    """(header stamp in ns, label map) of a label Image message."""
    try:
        return stamp_to_ns(msg.header.stamp), mask_to_labels(msg)
    except ImageConversionError as err:
        raise BagError(f"bad label image on {topic} in bag {bag.path}: {err}") from err


def read_label_topic(path: str | Path, topic: str) -> dict[int, np.ndarray]:
    """Stamp -> label map for every label image on ``topic`` (the last one wins for a repeated stamp)."""
    with read_bag(path) as bag:
        require_topic(bag, topic, IMAGE_TYPE)
        maps = {}
        for name, _, msg in bag.messages([topic]):
            stamp, labels = decode_labels(bag, name, msg)
            maps[stamp] = compact_labels(labels)
    return maps


def initial_mask(path: str | Path, ground_truth: dict[int, np.ndarray]) -> tuple[int, tuple[int, ...]]:
    """(stamp, object ids) of the bag's initial mask; without one, of its first ground-truth frame."""
    with read_bag(path) as bag:
        if bag.topics.get(INITIAL_MASK_TOPIC) == IMAGE_TYPE:
            for name, _, msg in bag.messages([INITIAL_MASK_TOPIC]):
                stamp, labels = decode_labels(bag, name, msg)
                return stamp, tuple(int(v) for v in np.unique(labels) if v != 0)
    stamp = min(ground_truth)
    return stamp, tuple(int(v) for v in np.unique(ground_truth[stamp]) if v != 0)


def find_labels_topic(path: str | Path, exclude: tuple[str, ...] = (GROUND_TRUTH_TOPIC, INITIAL_MASK_TOPIC)) -> str:
    """The one Image topic named ``.../labels`` in a recorded bag (the node's ``~/labels``)."""
    with read_bag(path) as bag:
        candidates = sorted(
            topic
            for topic, msgtype in bag.topics.items()
            if msgtype == IMAGE_TYPE and topic.rsplit("/", 1)[-1] == "labels" and topic not in exclude
        )
    if len(candidates) != 1:
        found = ", ".join(candidates) or "none"
        raise BagError(
            f"cannot tell the label topic of {path} (Image topics named .../labels: {found}); pass it explicitly"
        )
    return candidates[0]


def score_label_maps(
    ground_truth: dict[int, np.ndarray],
    predictions: dict[int, np.ndarray],
    object_ids: tuple[int, ...],
    mask_stamp: int,
) -> BagScore:
    """DAVIS scores of predictions (stamp -> label map) against ground truth (stamp -> label map);
    frames after ``mask_stamp`` without a prediction count as missing."""
    if len(ground_truth) < 3:
        raise BagError(f"the DAVIS protocol needs at least 3 ground-truth frames, the bag has {len(ground_truth)}")
    if not object_ids:
        raise BagError("the initial mask holds no object (all pixels are background)")
    evaluator = SequenceEvaluator(object_ids)
    tracked = missing = 0
    for stamp in sorted(ground_truth):
        truth = ground_truth[stamp]
        prediction = predictions.get(stamp)
        if stamp > mask_stamp:
            tracked += 1
            missing += prediction is None
        if prediction is None:
            prediction = np.zeros_like(truth)
        elif prediction.shape != truth.shape:
            raise BagError(
                f"label image at stamp {stamp} ns is {prediction.shape[1]}x{prediction.shape[0]}, "
                f"ground truth is {truth.shape[1]}x{truth.shape[0]}"
            )
        evaluator.add(truth, prediction)
    summary = summarize({"bag": evaluator.scores()})
    return BagScore(summary, tuple(object_ids), len(ground_truth), tracked, missing)


def score_bags(
    recorded: str | Path,
    ground_truth: str | Path,
    labels_topic: str | None = None,
    ground_truth_topic: str = GROUND_TRUTH_TOPIC,
) -> BagScore:
    """Score the label images of a recorded bag against the ground truth of a clip bag."""
    truth = read_label_topic(ground_truth, ground_truth_topic)
    if not truth:
        raise BagError(f"bag {ground_truth} holds no ground truth on {ground_truth_topic}")
    mask_stamp, object_ids = initial_mask(ground_truth, truth)
    predictions = read_label_topic(recorded, labels_topic or find_labels_topic(recorded))
    return score_label_maps(truth, predictions, object_ids, mask_stamp)


def score_report(score: BagScore) -> dict:
    """JSON-ready scores as vos-ros-eval writes them (fractions in [0, 1]), per object, and the frame counts."""
    summary = score.summary
    report = {key: summary[key] for key in ("J&F", "J", "F", "J_recall", "J_decay", "F_recall", "F_decay")}
    report["objects"] = summary["sequences"]["bag"]["objects"]
    report["ground_truth_frames"] = score.frames
    report["frames_tracked"] = score.frames_tracked
    report["frames_missing"] = score.frames_missing
    return report


def score_lines(score: BagScore) -> list[str]:
    """Human-readable lines in percent, ending with ``J&F <x> J <x> F <x>`` as vos-ros-eval prints it."""
    report = score_report(score)
    lines = [
        f"object {key}: J&F {100 * stats['J&F']:.1f} J {100 * stats['J']:.1f} F {100 * stats['F']:.1f}"
        for key, stats in report["objects"].items()
    ]
    lines.append(
        f"ground-truth frames {score.frames}; after the initial mask {score.frames_tracked}, "
        f"of which without labels {score.frames_missing}"
    )
    lines.append(f"J&F {100 * report['J&F']:.1f} J {100 * report['J']:.1f} F {100 * report['F']:.1f}")
    return lines
