"""The training forward pass: a mostly frozen backbone, trainable heads, one loss per batch of clips.

The ImageNet backbone stays frozen (no gradient, batch norm in eval mode) up to its last
``tuned_blocks`` blocks: on a 2-core CPU a backward pass through the whole trunk would triple
the step time, and with 30 training videos its early features are better left general. The
embedding heads, the prototype relation, the decoder, the three scalars and the tuned blocks
learn; batch norm keeps its ImageNet statistics everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from vos_ros.model.network import EncodedFrame, Reference, VosNetwork
from vos_ros.train.clips import ANCHOR, CURRENT, PREVIOUS, TrainingClip
from vos_ros.train.losses import segmentation_losses, soft_labels


def trainable_parameters(network: VosNetwork) -> list[nn.Parameter]:
    """Every parameter that learns: the heads and any tuned backbone blocks."""
    return [p for p in network.parameters() if p.requires_grad]


def parameter_groups(network: VosNetwork, backbone_lr_scale: float) -> list[dict]:
    """Optimizer groups: the heads at the full rate, tuned backbone blocks at ``backbone_lr_scale`` of it."""
    heads = [p for name, p in network.named_parameters() if not name.startswith("backbone.")]
    tuned = [p for p in network.backbone.parameters() if p.requires_grad]
    groups = [{"params": heads, "lr_scale": 1.0}]
    if tuned:
        groups.append({"params": tuned, "lr_scale": backbone_lr_scale})
    return groups


class ClipObjective(nn.Module):
    """``forward(frames, labels, previous, use_prediction, num_objects)`` -> dict of mean losses (plus ``total``).

    ``frames`` [B*T, 3, H, W] in [0, 1] (T frames per clip: anchor, previous, then the frames to
    segment), ``labels`` [B, T, H, W], ``previous`` [B, H, W] (the previous mask given when the
    clip does not use the prediction). From the third frame on, each frame is segmented against
    the anchor and the frame before it, whose probabilities are the network's own (detached)
    output, as in a session; the losses are averaged over those frames. ``total`` sums them,
    the ``jaccard`` term weighted by ``jaccard_weight``.
    """

    def __init__(
        self, network: VosNetwork, tuned_blocks: int = 0, hard_fraction: float = 1.0, jaccard_weight: float = 0.0
    ):
        super().__init__()
        if not network.config.learned:
            raise ValueError(f"config {network.config.name!r} has nothing to learn")
        if not 0 <= tuned_blocks <= network.backbone.num_blocks:
            raise ValueError(f"tuned backbone blocks must be in 0..{network.backbone.num_blocks}, got {tuned_blocks}")
        self.network = network
        self.frozen_blocks = network.backbone.num_blocks - tuned_blocks
        self.hard_fraction = hard_fraction
        self.weights = {"jaccard": jaccard_weight}
        network.backbone.freeze(tuned_blocks)

    def train(self, mode: bool = True) -> ClipObjective:
        super().train(mode)
        self.network.backbone.eval()
        return self

    def encode(self, frames: torch.Tensor) -> list[EncodedFrame]:
        return self.network.encode_features(self.network.backbone(frames, self.frozen_blocks))

    def forward(
        self,
        frames: torch.Tensor,
        labels: torch.Tensor,
        previous: torch.Tensor,
        use_prediction: Sequence[bool],
        num_objects: Sequence[int],
    ) -> dict[str, torch.Tensor]:
        encoded = self.encode(frames)
        length = labels.shape[1]
        share = 1.0 / (len(num_objects) * (length - CURRENT))
        totals: dict[str, torch.Tensor] = {}
        for b, (predict, objects) in enumerate(zip(use_prediction, num_objects)):
            clip = encoded[length * b : length * (b + 1)]
            anchor = Reference(clip[ANCHOR], soft_labels(labels[b, ANCHOR], objects, clip[ANCHOR].size))
            if predict:
                with torch.no_grad():
                    guess = self.network.segment(clip[PREVIOUS], [anchor], anchor).log_probs.exp()
                reference = Reference.pooled(clip[PREVIOUS], guess)
            else:
                reference = Reference(clip[PREVIOUS], soft_labels(previous[b], objects, clip[PREVIOUS].size))
            for t in range(CURRENT, length):
                output = self.network.segment(clip[t], [anchor], reference)
                for name, value in segmentation_losses(output, labels[b, t], objects, self.hard_fraction).items():
                    totals[name] = totals.get(name, 0.0) + value * share
                reference = Reference.pooled(clip[t], output.log_probs.detach().exp())
        totals["total"] = sum(value * self.weights.get(name, 1.0) for name, value in totals.items())
        return totals


def collate(clips: Sequence[TrainingClip], device: torch.device) -> dict:
    """Keyword arguments of ``ClipObjective.forward`` for a batch of clips."""
    frames = np.concatenate([clip.frames for clip in clips])
    return {
        "frames": torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float() / 255.0,
        "labels": torch.from_numpy(np.stack([clip.labels for clip in clips])).to(device),
        "previous": torch.from_numpy(np.stack([clip.previous_labels for clip in clips])).to(device),
        "use_prediction": [clip.use_prediction for clip in clips],
        "num_objects": [clip.num_objects for clip in clips],
    }
