"""Losses of the two branches and of the fused output, against soft (area-pooled) labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vos_ros.model.network import Segmentation

EPS = 1e-6


def soft_labels(labels: torch.Tensor, num_objects: int, size: tuple[int, int]) -> torch.Tensor:
    """Label map [H, W] (0..K) -> class fractions [K+1, h, w] by area pooling (as the session makes references)."""
    one_hot = F.one_hot(labels, num_objects + 1).permute(2, 0, 1).float()
    return F.adaptive_avg_pool2d(one_hot[None], size)[0]


def segmentation_losses(output: Segmentation, labels: torch.Tensor, num_objects: int) -> dict[str, torch.Tensor]:
    """``fg``: BCE of the global branch's foreground logit vs the union of objects (stride 4);
    ``instance``: cross-entropy of the instance logits over objects, weighted by the foreground
    share of each stride-8 cell; ``fused``: soft cross-entropy of the final log-probs (stride 4).
    """
    target4 = soft_labels(labels, num_objects, tuple(output.log_probs.shape[-2:]))
    target8 = soft_labels(labels, num_objects, tuple(output.instance_logits.shape[-2:]))
    fg = F.binary_cross_entropy_with_logits(output.fg_logit, 1.0 - target4[0])
    log_assign = torch.log_softmax(output.instance_logits, dim=0)
    instance = -(target8[1:] * log_assign).sum() / (target8[1:].sum() + EPS)
    fused = -(target4 * output.log_probs).sum(0).mean()
    return {"fg": fg, "instance": instance, "fused": fused}
