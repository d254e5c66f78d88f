"""The VOS network: one forward pass segments every object of a frame.

The network is stateless; the per-stream state (reference frames, object slots) lives in the
engine's session. Objects are channels 1..K of the probability tensors (slot order), channel 0
is the background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vos_ros.model.backbone import Backbone
from vos_ros.model.configs import NetworkConfig
from vos_ros.model.decoder import ForegroundDecoder
from vos_ros.model.embedding import (
    EmbeddingHead,
    PrototypeRelation,
    backbone_embedding,
    match_global,
    match_local,
    pool_prototypes,
    vote,
)

EPS = 1e-6


@dataclass
class EncodedFrame:
    """What the network computes from one image, before any reference is involved."""

    key: torch.Tensor
    instance: torch.Tensor
    skip: torch.Tensor
    hidden: torch.Tensor | None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) at stride 8."""
        return tuple(self.key.shape[-2:])


@dataclass
class Reference:
    """One encoded reference frame with its soft labels [K+1, h, w] at stride 8.

    ``foreground_only`` marks an anchor whose background is no longer trustworthy (objects
    were added later: their pixels there are labelled background); only its object pixels
    are matched.
    """

    frame: EncodedFrame
    probs: torch.Tensor
    foreground_only: bool = False

    @classmethod
    def pooled(cls, frame: EncodedFrame, probs: torch.Tensor) -> Reference:
        """A reference from soft labels [K+1, H, W] at any resolution, area-pooled to the frame's grid."""
        return cls(frame, F.adaptive_avg_pool2d(probs[None], frame.size)[0])

    def pixels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys [C, M] and soft labels [K+1, M] of the pixels to match against."""
        keys, probs = self.frame.key.flatten(1), self.probs.flatten(1)
        if self.foreground_only:
            keep = probs[0] < 0.5
            keys, probs = keys[:, keep], probs[:, keep]
        return keys, probs


@dataclass
class Segmentation:
    """Network output: log-probabilities [K+1, h4, w4] plus the branch outputs (for training)."""

    log_probs: torch.Tensor
    fg_logit: torch.Tensor
    instance_logits: torch.Tensor


class VosNetwork(nn.Module):
    """Backbone + global embedding + instance embedding + fusion, for all objects at once."""

    def __init__(self, config: NetworkConfig, pretrained_backbone: bool = True):
        super().__init__()
        self.config = config
        self.backbone = Backbone(pretrained=pretrained_backbone)
        ch = Backbone.channels
        if config.learned:
            self.key_head = EmbeddingHead(ch[8], ch[16], config.hidden, config.key_dim)
            self.instance_head = EmbeddingHead(ch[8], ch[16], config.hidden, config.instance_dim)
            self.relation = PrototypeRelation(config.instance_dim)
            self.decoder = ForegroundDecoder(config.hidden, ch[4])
            self.log_temperature = nn.Parameter(torch.tensor(math.log(config.temperature)))
            self.prototype_scale = nn.Parameter(torch.tensor(1.0 / config.prototype_temperature))
            self.vote_weight = nn.Parameter(torch.tensor(1.0))

    @property
    def device(self) -> torch.device:
        """Where the weights live."""
        return next(self.parameters()).device

    def encode(self, rgb: torch.Tensor) -> EncodedFrame:
        """Encode one image [1, 3, H, W] (RGB in [0, 1])."""
        return self.encode_features(self.backbone(rgb))[0]

    def encode_features(self, features: dict[int, torch.Tensor]) -> list[EncodedFrame]:
        """Embeddings of a batch from its backbone features (strides 4, 8, 16): one frame per item."""
        if not self.config.learned:
            keys = backbone_embedding(features[8], features[16])
            return [
                EncodedFrame(key=k, instance=k, skip=features[4][i : i + 1], hidden=None) for i, k in enumerate(keys)
            ]
        keys, hidden = self.key_head(features[8], features[16])
        instances, _ = self.instance_head(features[8], features[16])
        return [
            EncodedFrame(key=keys[i], instance=instances[i], skip=features[4][i : i + 1], hidden=hidden[i : i + 1])
            for i in range(len(keys))
        ]

    def segment(self, frame: EncodedFrame, anchors: list[Reference], previous: Reference) -> Segmentation:
        """Segment all K objects of ``frame`` given anchor frames and the previous frame."""
        cfg = self.config
        height, width = frame.size
        query = frame.key.flatten(1)
        anchor_pixels = [a.pixels() for a in anchors]
        keys = torch.cat([k for k, _ in anchor_pixels], dim=1)
        probs = torch.cat([p for _, p in anchor_pixels], dim=1)
        order = torch.argsort((probs[0] >= 0.5).to(torch.uint8), stable=True)
        num_fg = int((probs[0] < 0.5).sum())
        global_match = match_global(query, keys[:, order], probs[:, order], num_fg, cfg.topk)
        local_match = match_local(frame.key, previous.frame.key, previous.probs, cfg.local_radius, cfg.topk)
        temperature = self.log_temperature.exp() if cfg.learned else cfg.temperature
        votes = vote([global_match, local_match], temperature)
        fg_vote = (1.0 - votes[0]).clamp(1e-4, 1 - 1e-4)
        prior_logit = torch.log(fg_vote / (1.0 - fg_vote)).view(1, 1, height, width)
        instance_vote = torch.log(votes[1:] / (votes[1:].sum(0, keepdim=True) + EPS) + EPS)

        sums, weights = pool_prototypes(previous.frame.instance, previous.probs)
        for anchor in anchors:
            anchor_sums, anchor_weights = pool_prototypes(anchor.frame.instance, anchor.probs)
            sums, weights = sums + anchor_sums, weights + anchor_weights
        prototypes = F.normalize(sums / (weights[:, None] + EPS), dim=1)
        pixels = frame.instance.flatten(1)

        if cfg.learned:
            prototypes = self.relation(prototypes)
            instance_logits = self.prototype_scale * (prototypes @ pixels) + self.vote_weight * instance_vote
            match_maps = torch.stack(
                [
                    global_match.fg_sim,
                    global_match.bg_sim,
                    local_match.fg_sim,
                    local_match.bg_sim,
                    fg_vote,
                    1.0 - previous.probs[0].flatten(),
                ]
            ).view(1, -1, height, width)
            fg_logit = self.decoder(match_maps, frame.hidden, frame.skip, prior_logit)
        else:
            scale = cfg.prototype_weight / cfg.prototype_temperature
            instance_logits = scale * (prototypes @ pixels) + instance_vote
            fg_logit = F.interpolate(prior_logit, size=frame.skip.shape[-2:], mode="bilinear", align_corners=False)

        instance_logits = instance_logits.view(1, -1, height, width)
        instance_up = F.interpolate(instance_logits, size=frame.skip.shape[-2:], mode="bilinear", align_corners=False)[
            0
        ]
        fg = fg_logit[0]
        log_probs = torch.cat([F.logsigmoid(-fg), F.logsigmoid(fg) + torch.log_softmax(instance_up, dim=0)])
        return Segmentation(log_probs=log_probs, fg_logit=fg_logit[0, 0], instance_logits=instance_logits[0])
