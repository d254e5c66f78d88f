"""The training forward pass: a frozen backbone, trainable heads, one loss per batch of clips.

The ImageNet backbone stays frozen (no gradient, batch norm in eval mode): on a 2-core CPU
its backward pass would triple the step time, and with 30 training videos its features are
better left general. Only the embedding heads, the prototype relation, the decoder and the
three scalars learn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vos_ros.model.network import EncodedFrame, Reference, VosNetwork
from vos_ros.train.clips import ANCHOR, CURRENT, TrainingClip
from vos_ros.train.losses import segmentation_losses, soft_labels

FRAMES_PER_CLIP = 3


def freeze_backbone(network: VosNetwork) -> None:
    """Stop gradients into the backbone."""
    for parameter in network.backbone.parameters():
        parameter.requires_grad_(False)


def trainable_parameters(network: VosNetwork) -> list[nn.Parameter]:
    """Every parameter outside the backbone."""
    return [p for name, p in network.named_parameters() if not name.startswith("backbone.")]


class ClipObjective(nn.Module):
    """``forward(frames, labels, previous, use_prediction, num_objects)`` -> dict of mean losses (plus ``total``).

    ``frames`` [B*3, 3, H, W] in [0, 1] (anchor, previous, current per clip), ``labels`` [B, 3, H, W],
    ``previous`` [B, H, W] (the previous mask given when the clip does not use the prediction).
    """

    def __init__(self, network: VosNetwork):
        super().__init__()
        if not network.config.learned:
            raise ValueError(f"config {network.config.name!r} has nothing to learn")
        self.network = network
        freeze_backbone(network)

    def train(self, mode: bool = True) -> ClipObjective:
        super().train(mode)
        self.network.backbone.eval()
        return self

    def encode(self, frames: torch.Tensor) -> list[EncodedFrame]:
        with torch.no_grad():
            features = self.network.backbone(frames)
        return self.network.encode_features(features)

    def forward(
        self,
        frames: torch.Tensor,
        labels: torch.Tensor,
        previous: torch.Tensor,
        use_prediction: Sequence[bool],
        num_objects: Sequence[int],
    ) -> dict[str, torch.Tensor]:
        encoded = self.encode(frames)
        totals: dict[str, torch.Tensor] = {}
        for b, (predict, objects) in enumerate(zip(use_prediction, num_objects)):
            anchor_frame, previous_frame, current_frame = encoded[FRAMES_PER_CLIP * b : FRAMES_PER_CLIP * (b + 1)]
            anchor = Reference(anchor_frame, soft_labels(labels[b, ANCHOR], objects, anchor_frame.size))
            if predict:
                with torch.no_grad():
                    guess = self.network.segment(previous_frame, [anchor], anchor).log_probs.exp()
                previous_probs = F.adaptive_avg_pool2d(guess[None], previous_frame.size)[0]
            else:
                previous_probs = soft_labels(previous[b], objects, previous_frame.size)
            output = self.network.segment(current_frame, [anchor], Reference(previous_frame, previous_probs))
            for name, value in segmentation_losses(output, labels[b, CURRENT], objects).items():
                totals[name] = totals.get(name, 0.0) + value / len(num_objects)
        totals["total"] = sum(totals.values())
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
