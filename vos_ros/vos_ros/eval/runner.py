"""Run a network over DAVIS sequences with the session API and score it with the DAVIS protocol."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vos_ros.engine.session import Session
from vos_ros.eval.davis import DavisDataset, DavisError, write_label_png
from vos_ros.eval.metrics import SequenceEvaluator, SequenceScores, summarize
from vos_ros.eval.prompts import gt_box


def evaluate(
    network: Any,
    davis_root: str | Path,
    sequences: Sequence[str],
    save_masks: str | Path | None = None,
    progress: bool = True,
    session_factory: Callable[[Any], Any] = Session,
    init: str = "mask",
) -> dict:
    """Segment and score each sequence; return the report.

    Per sequence: a fresh session gets the first frame's annotation with ``set_mask`` (that
    annotation is also frame 0's prediction), then ``step`` runs on every following frame.
    ``save_masks`` writes the predictions as indexed PNGs to ``<save_masks>/<sequence>/<frame>.png``.
    ``session_factory`` builds a session from the network (default ``Session(network)``).
    ``init="box"`` starts each sequence from boxes instead: the true box of every object of the
    first frame, grown by ``GROW`` on each side, goes to ``add_objects`` (the prompt head's masks
    seed tracking and are frame 0's prediction).

    The report is :func:`vos_ros.eval.metrics.summarize` (fractions in [0, 1]) plus ``n_frames``
    and ``ms_per_frame`` (mean wall time of ``step``) overall and in every ``sequences[name]``.
    """
    if init not in ("mask", "box"):
        raise ValueError(f"init must be 'mask' or 'box', got {init!r}")
    names = list(dict.fromkeys(sequences))
    if not names:
        raise DavisError("no sequences to evaluate")
    dataset = DavisDataset(davis_root)
    opened = [dataset.sequence(name) for name in names]
    for seq in opened:
        if len(seq) < 3:
            raise DavisError(f"sequence '{seq.name}' has {len(seq)} frame(s); the DAVIS protocol needs at least 3")
    scores: dict[str, SequenceScores] = {}
    timings: dict[str, list[float]] = {}
    with tqdm(total=sum(len(seq) for seq in opened), unit="frame", disable=not progress, file=sys.stderr) as bar:
        for seq in opened:
            bar.set_description(seq.name)
            session = session_factory(network)
            evaluator = SequenceEvaluator(seq.object_ids)
            step_ms: list[float] = []
            for index, (image, ground_truth) in enumerate(seq.frames()):
                if index == 0 and init == "box":
                    ids = [int(v) for v in np.unique(ground_truth) if v != 0]
                    prompted = session.add_objects(image, [gt_box(ground_truth == i) for i in ids], append=False)
                    to_truth = np.zeros(max(prompted.ids) + 1, np.uint16)
                    to_truth[prompted.ids] = ids
                    prediction = to_truth[prompted.label_map]
                elif index == 0:
                    session.set_mask(image, ground_truth)
                    prediction = ground_truth
                    to_truth = None
                else:
                    start = time.perf_counter()
                    prediction = np.asarray(session.step(image).label_map)
                    step_ms.append((time.perf_counter() - start) * 1000.0)
                    if to_truth is not None:
                        prediction = to_truth[prediction]
                evaluator.add(ground_truth, prediction)
                if save_masks is not None:
                    write_label_png(Path(save_masks) / seq.name / f"{seq.frame_paths[index].stem}.png", prediction)
                bar.update(1)
            scores[seq.name] = evaluator.scores()
            timings[seq.name] = step_ms
    report = summarize(scores)
    for seq in opened:
        entry = report["sequences"][seq.name]
        entry["n_frames"] = len(seq)
        entry["ms_per_frame"] = float(np.mean(timings[seq.name]))
    all_steps = [ms for per_sequence in timings.values() for ms in per_sequence]
    report["n_frames"] = sum(len(seq) for seq in opened)
    report["ms_per_frame"] = float(np.mean(all_steps))
    return report


def format_table(report: dict) -> str:
    """Per-sequence table (percent), a mean row, recall/decay, and the final J&F line."""
    lines = [f"{'sequence':<24} {'frames':>6} {'objs':>4} {'J':>6} {'F':>6} {'J&F':>6} {'ms/frame':>9}"]
    for name, seq in report["sequences"].items():
        lines.append(
            f"{name:<24} {seq['n_frames']:>6d} {seq['n_objects']:>4d} {100 * seq['J']:>6.1f} "
            f"{100 * seq['F']:>6.1f} {100 * seq['J&F']:>6.1f} {seq['ms_per_frame']:>9.1f}"
        )
    lines.append(
        f"{'mean over objects':<24} {report['n_frames']:>6d} {report['n_objects']:>4d} {100 * report['J']:>6.1f} "
        f"{100 * report['F']:>6.1f} {100 * report['J&F']:>6.1f} {report['ms_per_frame']:>9.1f}"
    )
    lines.append(
        f"J recall {100 * report['J_recall']:.1f} decay {100 * report['J_decay']:.1f}   "
        f"F recall {100 * report['F_recall']:.1f} decay {100 * report['F_decay']:.1f}"
    )
    lines.append(f"J&F {100 * report['J&F']:.1f} J {100 * report['J']:.1f} F {100 * report['F']:.1f}")
    return "\n".join(lines)
