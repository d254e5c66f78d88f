"""Losses of the two branches and of the fused output, against soft (area-pooled) labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vos_ros.model.network import Segmentation

EPS = 1e-6


def hardest_mean(per_pixel: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mean of the largest ``fraction`` of per-pixel losses (bootstrapped loss: the pixels still wrong weigh more)."""
    flat = per_pixel.flatten()
    if fraction >= 1.0:
        return flat.mean()
    return flat.topk(max(1, int(fraction * flat.numel()))).values.mean()


def _negative_entropy(target: torch.Tensor) -> torch.Tensor:
    return torch.xlogy(target, target)


def soft_labels(labels: torch.Tensor, num_objects: int, size: tuple[int, int]) -> torch.Tensor:
    """Label map [H, W] (0..K) -> class fractions [K+1, h, w] by area pooling (as the session makes references)."""
    one_hot = F.one_hot(labels, num_objects + 1).permute(2, 0, 1).float()
    return F.adaptive_avg_pool2d(one_hot[None], size)[0]


def soft_jaccard(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft IoU of object probabilities [K, ...] with their targets, averaged over the objects
    present in the target (0 when none is)."""
    probs, target = probs.flatten(1), target.flatten(1)
    present = target.sum(1) > 0
    intersection = (probs * target).sum(1)
    union = (probs + target - probs * target).sum(1)
    return (1.0 - intersection / (union + EPS))[present].sum() / present.sum().clamp(min=1)


def segmentation_losses(
    output: Segmentation, labels: torch.Tensor, num_objects: int, hard_fraction: float = 1.0
) -> dict[str, torch.Tensor]:
    """``fg``: binary KL divergence of the global branch's foreground vs the union of objects;
    ``instance``: cross-entropy of the instance logits over objects, weighted by the foreground
    share of each stride-8 cell; ``fused``: KL divergence of the final probabilities from the
    soft labels; ``jaccard``: soft IoU loss of the final object probabilities (a whole-mask
    term: a small object counts as much as a large one). ``fg`` and ``fused`` are at stride 4,
    averaged over the ``hard_fraction`` of pixels where they are largest (KL rather than
    cross-entropy: same gradients, but mixed boundary cells do not rank as hard by their label
    entropy alone).
    """
    target4 = soft_labels(labels, num_objects, tuple(output.log_probs.shape[-2:]))
    target8 = soft_labels(labels, num_objects, tuple(output.instance_logits.shape[-2:]))
    fg_target = 1.0 - target4[0]
    fg_kl = (
        F.binary_cross_entropy_with_logits(output.fg_logit, fg_target, reduction="none")
        + _negative_entropy(fg_target)
        + _negative_entropy(1.0 - fg_target)
    )
    fg = hardest_mean(fg_kl, hard_fraction)
    log_assign = torch.log_softmax(output.instance_logits, dim=0)
    instance = -(target8[1:] * log_assign).sum() / (target8[1:].sum() + EPS)
    fused = hardest_mean((_negative_entropy(target4) - target4 * output.log_probs).sum(0), hard_fraction)
    jaccard = soft_jaccard(output.log_probs[1:].exp(), target4[1:])
    return {"fg": fg, "instance": instance, "fused": fused, "jaccard": jaccard}
