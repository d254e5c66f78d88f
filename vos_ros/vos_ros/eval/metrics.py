"""The DAVIS metrics (region J, boundary F, mean/recall/decay), as davis2017-evaluation computes them.

Masks are 2-D arrays (any nonzero pixel is foreground); label maps are 2-D integer arrays
where pixel value k is object k and 0 is background. Every function here is pure numpy/OpenCV
so the offline DAVIS runner and the rosbag replay evaluator share one implementation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

BOUND_TH = 0.008
"""Boundary tolerance as a fraction of the image diagonal (8 px at 854x480)."""


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.ndim != 2 or pred.ndim != 2:
        raise ValueError(f"masks must be 2-D, got shapes {gt.shape} and {pred.shape}")
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in size")
    if gt.size == 0:
        raise ValueError("masks are empty arrays (0 pixels)")
    return gt, pred


def db_eval_iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """Region similarity J: intersection over union of two binary masks (1.0 when both are empty)."""
    gt, pred = _check_pair(gt, pred)
    gt = gt.astype(bool)
    pred = pred.astype(bool)
    union = np.count_nonzero(gt | pred)
    if union == 0:
        return 1.0
    return np.count_nonzero(gt & pred) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a binary mask, as DAVIS ``_seg2bmap`` draws it.

    A pixel is a boundary pixel when it differs from its east, south or south-east
    neighbour; the last row compares only east, the last column only south, and the
    bottom-right pixel is never a boundary (so a mask's edges on the image border are not boundary).
    """
    seg = np.asarray(mask).astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def disk(radius: int) -> np.ndarray:
    """A (2r+1)x(2r+1) uint8 disk: 1 where x^2 + y^2 <= r^2 (same as ``skimage.morphology.disk``)."""
    radius = int(radius)
    offsets = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(offsets, offsets)
    return (xx**2 + yy**2 <= radius**2).astype(np.uint8)


def boundary_tolerance(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """Match radius in pixels: ``bound_th`` itself when >= 1, else ceil(bound_th x image diagonal)."""
    if bound_th >= 1:
        return int(bound_th)
    return math.ceil(bound_th * math.hypot(shape[0], shape[1]))


def db_eval_boundary(gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """Boundary F-measure of two binary masks.

    Precision: share of predicted boundary pixels within the tolerance disk of a true boundary
    pixel; recall: the converse; F = 2PR / (P + R). 1.0 when both boundaries are empty,
    0.0 when only one is.
    """
    gt, pred = _check_pair(gt, pred)
    kernel = disk(boundary_tolerance(pred.shape, bound_th))
    pred_boundary = boundary_map(pred)
    gt_boundary = boundary_map(gt)
    n_pred = np.count_nonzero(pred_boundary)
    n_gt = np.count_nonzero(gt_boundary)
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0
    pred_dilated = cv2.dilate(pred_boundary.astype(np.uint8), kernel).astype(bool)
    gt_dilated = cv2.dilate(gt_boundary.astype(np.uint8), kernel).astype(bool)
    precision = np.count_nonzero(pred_boundary & gt_dilated) / n_pred
    recall = np.count_nonzero(gt_boundary & pred_dilated) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def db_statistics(per_frame: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """(mean, recall, decay) of one object's per-frame scores.

    Recall is the share of frames scoring above 0.5. Decay is the mean of the first of four
    bins minus the mean of the last, with the bin edges of davis2017-evaluation.
    """
    values = np.asarray(per_frame, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no per-frame scores to summarise")
    mean = float(values.mean())
    recall = float((values > 0.5).mean())
    edges = (np.round(np.linspace(1, values.size, 5) + 1e-10) - 1).astype(np.int64)
    first = values[edges[0] : edges[1] + 1]
    last = values[edges[3] : edges[4] + 1]
    return mean, recall, float(first.mean() - last.mean())


@dataclass(frozen=True)
class SequenceScores:
    """Per-frame J and F of each object of one sequence: ``j[k, t]``, ``f[k, t]`` for ``object_ids[k]``."""

    object_ids: tuple[int, ...]
    j: np.ndarray
    f: np.ndarray

    @property
    def n_frames(self) -> int:
        """Number of evaluated frames."""
        return int(self.j.shape[1])


@dataclass
class SequenceEvaluator:
    """Scores one sequence frame by frame (constant memory), then excludes first and last frame.

    ``add`` takes a ground-truth and a predicted label map per frame; each object id is compared
    as the binary mask ``label_map == id``.
    """

    object_ids: Sequence[int]
    bound_th: float = BOUND_TH
    _j: list[list[float]] = field(default_factory=list, init=False, repr=False)
    _f: list[list[float]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        ids = [int(i) for i in self.object_ids]
        if not ids:
            raise ValueError("no object ids to evaluate")
        if any(i <= 0 for i in ids) or len(set(ids)) != len(ids):
            raise ValueError(f"object ids must be distinct positive integers, got {ids}")
        self.object_ids = tuple(ids)

    def add(self, gt_label_map: np.ndarray, pred_label_map: np.ndarray) -> None:
        """Score one frame for every object."""
        gt, pred = _check_pair(gt_label_map, pred_label_map)
        self._j.append([db_eval_iou(gt == k, pred == k) for k in self.object_ids])
        self._f.append([db_eval_boundary(gt == k, pred == k, self.bound_th) for k in self.object_ids])

    def scores(self, skip_first_last: bool = True) -> SequenceScores:
        """The per-frame scores so far; by DAVIS protocol without the first and the last frame."""
        j = np.asarray(self._j, dtype=np.float64).reshape(-1, len(self.object_ids)).T
        f = np.asarray(self._f, dtype=np.float64).reshape(-1, len(self.object_ids)).T
        if skip_first_last:
            if j.shape[1] < 3:
                raise ValueError(f"the DAVIS protocol needs at least 3 frames, got {j.shape[1]}")
            j, f = j[:, 1:-1], f[:, 1:-1]
        elif j.shape[1] == 0:
            raise ValueError("no frames were scored")
        return SequenceScores(self.object_ids, j, f)


def evaluate_sequence(
    gt_label_maps: Iterable[np.ndarray],
    pred_label_maps: Iterable[np.ndarray],
    object_ids: Sequence[int] | None = None,
    skip_first_last: bool = True,
    bound_th: float = BOUND_TH,
) -> SequenceScores:
    """Per-object, per-frame J and F of one sequence.

    ``object_ids`` defaults to the nonzero ids of the first ground-truth label map.
    The two iterables must have the same length.
    """
    gt_list = list(gt_label_maps)
    pred_list = list(pred_label_maps)
    if len(gt_list) != len(pred_list):
        raise ValueError(f"{len(gt_list)} ground-truth maps but {len(pred_list)} predictions")
    if not gt_list:
        raise ValueError("no frames to evaluate")
    if object_ids is None:
        object_ids = [int(v) for v in np.unique(gt_list[0]) if v != 0]
    evaluator = SequenceEvaluator(object_ids, bound_th)
    for gt, pred in zip(gt_list, pred_list):
        evaluator.add(gt, pred)
    return evaluator.scores(skip_first_last)


def summarize(sequences: Mapping[str, SequenceScores]) -> dict:
    """Dataset summary: J/F mean, recall and decay averaged over ALL objects of all sequences.

    Returns fractions in [0, 1]: ``J``, ``F``, ``J&F`` (= (J + F) / 2), ``J_recall``,
    ``J_decay``, ``F_recall``, ``F_decay``, ``n_sequences``, ``n_objects`` and
    ``sequences[name]`` with the sequence's J, F, J&F (means over its objects),
    ``n_objects``, ``n_frames_evaluated`` and ``objects[str(id)]`` with that object's statistics.
    """
    if not sequences:
        raise ValueError("no sequences to summarise")
    per_object: list[dict[str, float]] = []
    per_sequence: dict[str, dict] = {}
    for name, scores in sequences.items():
        objects = {}
        for k, object_id in enumerate(scores.object_ids):
            j_mean, j_recall, j_decay = db_statistics(scores.j[k])
            f_mean, f_recall, f_decay = db_statistics(scores.f[k])
            stats = {
                "J": j_mean,
                "F": f_mean,
                "J&F": (j_mean + f_mean) / 2,
                "J_recall": j_recall,
                "J_decay": j_decay,
                "F_recall": f_recall,
                "F_decay": f_decay,
            }
            objects[str(object_id)] = stats
            per_object.append(stats)
        j_seq = float(np.mean([o["J"] for o in objects.values()]))
        f_seq = float(np.mean([o["F"] for o in objects.values()]))
        per_sequence[name] = {
            "J": j_seq,
            "F": f_seq,
            "J&F": (j_seq + f_seq) / 2,
            "n_objects": len(objects),
            "n_frames_evaluated": scores.n_frames,
            "objects": objects,
        }
    summary = {key: float(np.mean([o[key] for o in per_object])) for key in ("J", "F")}
    summary["J&F"] = (summary["J"] + summary["F"]) / 2
    for key in ("J_recall", "J_decay", "F_recall", "F_decay"):
        summary[key] = float(np.mean([o[key] for o in per_object]))
    summary["n_sequences"] = len(per_sequence)
    summary["n_objects"] = len(per_object)
    summary["sequences"] = per_sequence
    return summary
