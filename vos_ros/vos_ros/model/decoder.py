"""Foreground fusion head and the light decoder with skip features (learned configs only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Class-agnostic matching maps fed to the head: nearest fg/bg similarity against the anchors
# and against the previous frame, the voted foreground probability, the previous foreground.
MATCH_CHANNELS = 6


class ForegroundDecoder(nn.Module):
    """Turns the class-agnostic matching maps (stride 8) into one foreground logit at stride 4.

    The output convolution starts at zero, so an untrained decoder reproduces the matching
    vote it is given as ``prior_logit``.
    """

    def __init__(self, hidden: int, skip_channels: int):
        super().__init__()
        self.fuse = nn.Sequential(
            nn.Conv2d(MATCH_CHANNELS + hidden, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.skip = nn.Conv2d(skip_channels, hidden, 1)
        self.refine = nn.Sequential(
            nn.ReLU(inplace=True), nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True)
        )
        self.out = nn.Conv2d(hidden, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, match_maps: torch.Tensor, hidden: torch.Tensor, skip: torch.Tensor, prior_logit: torch.Tensor
    ) -> torch.Tensor:
        x = self.fuse(torch.cat([match_maps, hidden], dim=1))
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + self.skip(skip)
        prior = F.interpolate(prior_logit, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return prior + self.out(self.refine(x))
