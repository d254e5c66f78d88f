"""The loss-curve PNG of a training log (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LOSSES = ("loss_total", "loss_fg", "loss_instance", "loss_fused")
FLOOR = 1e-3


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window or window < 2:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_losses(records: list[dict], path: str | Path) -> None:
    """Each loss against the step (raw, faint, and a moving average), log-scaled (floored at ``FLOOR``)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    steps = np.array([r["step"] for r in records])
    window = max(1, len(records) // 50)
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for name in LOSSES:
        values = np.maximum(np.array([r[name] for r in records if name in r]), FLOOR)
        if len(values) != len(steps):
            continue
        line = axis.plot(steps, values, alpha=0.2, linewidth=0.8)[0]
        smooth = _smooth(values, window)
        axis.plot(steps[len(steps) - len(smooth) :], smooth, color=line.get_color(), label=name.removeprefix("loss_"))
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
