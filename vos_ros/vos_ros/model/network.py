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
    match_global_split,
    match_local,
    pool_prototypes,
    vote,
)
from vos_ros.model.profiling import stage

EPS = 1e-6
# Query pixels matched against the anchors at a time (bounds the similarity matrix to a few MB).
GLOBAL_CHUNK = 512


def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(x)) as min(x, 0) - log(1 + exp(-|x|)): accurate far into the tails in any runtime.

    (ONNX has no LogSigmoid; exported as Log(Sigmoid(x)) it loses digits where sigmoid is tiny.)
    """
    return torch.clamp(x, max=0.0) - torch.log1p(torch.exp(-x.abs()))


@dataclass
class EncodedFrame:
    """What the network computes from one image, before any reference is involved."""

    key: torch.Tensor
    instance: torch.Tensor
    skip: torch.Tensor | None
    hidden: torch.Tensor | None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) at stride 8."""
        return tuple(self.key.shape[-2:])

    def for_reference(self) -> EncodedFrame:
        """What a reference frame needs of this frame: its key and instance embeddings.

        The decoder's inputs (``skip``, ``hidden``) are only read for the frame being segmented,
        so a stored reference drops them (at 640x480 with ``full``, 3.2 MB a reference). A key
        that is a view of a larger tensor (one frame of a batch) is copied, so that keeping it
        does not keep the whole batch.
        """

        def own(tensor: torch.Tensor) -> torch.Tensor:
            whole = tensor.untyped_storage().nbytes()
            return tensor.clone() if whole > tensor.numel() * tensor.element_size() else tensor

        key = own(self.key)
        instance = key if self.instance is self.key else own(self.instance)
        return EncodedFrame(key=key, instance=instance, skip=None, hidden=None)


@dataclass
class ReferencePixels:
    """A reference's pixels split into foreground (any object) and background, plus its prototype sums.

    Keys [C, M*], soft labels [K+1, M*]; ``sums`` [K, C] and ``weights`` [K] pool its instance
    embedding under its object probabilities.
    """

    fg_keys: torch.Tensor
    bg_keys: torch.Tensor
    fg_probs: torch.Tensor
    bg_probs: torch.Tensor
    sums: torch.Tensor
    weights: torch.Tensor


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

    def __post_init__(self) -> None:
        self._split: tuple | None = None

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

    def split_pixels(self, budget: int | None = None) -> ReferencePixels:
        """The pixels split by foreground, with the prototype sums; computed once per label state.

        ``budget`` bounds the number of pixels (None: all). Foreground pixels are all kept; the
        background gets what is left of the budget, at least half of it: first the background
        pixels most similar to any foreground pixel (the look-alikes the matching must see, half
        the background's share), then the rest taken evenly in raster order (a plain background
        repeats itself: its nearest and top-k similarities barely change). The matching work
        stays bounded whatever the objects.

        Anchors are matched on every frame while their labels rarely change: the split is
        cached and recomputed when ``probs``, ``foreground_only`` or the bound are replaced
        (the memory replaces, never edits, them). Only cached outside autograd.
        """
        state = (self.probs, self.foreground_only, budget)
        if self._split is not None and self._split[0] is state[0] and self._split[1:3] == state[1:]:
            return self._split[3]
        keys, probs = self.frame.key.flatten(1), self.probs.flatten(1)
        fg = probs[0] < 0.5
        if self.foreground_only:
            background = fg.new_zeros(0, dtype=torch.long)
        elif budget is None or keys.shape[1] <= budget:
            background = (~fg).nonzero()[:, 0]
        else:
            background = _thinned_background(keys, fg, budget)
        sums, weights = pool_prototypes(self.frame.instance, self.probs)
        split = ReferencePixels(
            fg_keys=keys[:, fg],
            bg_keys=keys[:, background],
            fg_probs=probs[:, fg],
            bg_probs=probs[:, background],
            sums=sums,
            weights=weights,
        )
        if not torch.is_grad_enabled():
            self._split = (*state, split)
        return split


def _evenly(index: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` entries of ``index`` spread evenly over it (all of them when it has no more)."""
    if count >= len(index):
        return index
    return index[torch.arange(count, device=index.device) * len(index) // count]


def _thinned_background(keys: torch.Tensor, foreground: torch.Tensor, budget: int) -> torch.Tensor:
    """Flat indices (raster order) of the background pixels kept under ``budget`` (see split_pixels),
    from the keys [C, M] and the foreground mask [M]."""
    fg_keys, bg_index = keys[:, foreground], (~foreground).nonzero()[:, 0]
    share = min(max(budget - fg_keys.shape[1], budget // 2), len(bg_index))
    hard = share // 2
    if fg_keys.shape[1] == 0 or hard == 0:
        return _evenly(bg_index, share)
    bg_keys = keys[:, bg_index]
    nearest = torch.cat([(bg_keys[:, i : i + 1024].t() @ fg_keys).amax(1) for i in range(0, bg_keys.shape[1], 1024)])
    order = nearest.argsort(descending=True)
    rest = order[hard:].sort().values
    kept = torch.cat([order[:hard], _evenly(rest, share - hard)])
    return bg_index[kept.sort().values]


def join_references(anchors: list[Reference], config: NetworkConfig | None = None) -> ReferencePixels:
    """The anchors' pixels, foreground then background (each in anchor order), with summed prototypes.

    ``config`` gives the bound on each anchor's pixels (None: every pixel)."""
    budget = config.anchor_pixels if config is not None else None
    parts = [a.split_pixels(budget) for a in anchors]
    if len(parts) == 1:
        return parts[0]
    return ReferencePixels(
        fg_keys=torch.cat([p.fg_keys for p in parts], dim=1),
        bg_keys=torch.cat([p.bg_keys for p in parts], dim=1),
        fg_probs=torch.cat([p.fg_probs for p in parts], dim=1),
        bg_probs=torch.cat([p.bg_probs for p in parts], dim=1),
        sums=sum(p.sums for p in parts),
        weights=sum(p.weights for p in parts),
    )


def segment_inputs(
    frame: EncodedFrame, anchors: list[Reference], previous: Reference, config: NetworkConfig | None = None
) -> list[torch.Tensor]:
    """The tensors of one segmentation step, in the order of :meth:`VosNetwork.segment_tensors` (and of
    the exported segment graph's inputs); ``config`` gives the bound on the anchors' pixels (None: none)."""
    refs = join_references(anchors, config)
    return [
        frame.key,
        frame.instance,
        frame.skip,
        frame.hidden,
        refs.fg_keys,
        refs.bg_keys,
        refs.fg_probs,
        refs.bg_probs,
        refs.sums,
        refs.weights,
        previous.frame.key,
        previous.frame.instance,
        previous.probs,
    ]


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
        with stage("backbone"):
            features = self.backbone(rgb)
        with stage("embedding heads"):
            return self.encode_features(features)[0]

    def encode_features(self, features: dict[int, torch.Tensor]) -> list[EncodedFrame]:
        """Embeddings of a batch from its backbone features (strides 4, 8, 16): one frame per item."""
        # The backbone runs channels-last; the frames hold plain contiguous tensors.
        skips = features[4].contiguous()
        if not self.config.learned:
            keys = backbone_embedding(features[8], features[16]).contiguous()
            return [EncodedFrame(key=k, instance=k, skip=skips[i : i + 1], hidden=None) for i, k in enumerate(keys)]
        keys, hidden = self.key_head(features[8], features[16])
        instances, _ = self.instance_head(features[8], features[16])
        keys, hidden, instances = keys.contiguous(), hidden.contiguous(), instances.contiguous()
        return [
            EncodedFrame(key=keys[i], instance=instances[i], skip=skips[i : i + 1], hidden=hidden[i : i + 1])
            for i in range(len(keys))
        ]

    def segment(self, frame: EncodedFrame, anchors: list[Reference], previous: Reference) -> Segmentation:
        """Segment all K objects of ``frame`` given anchor frames and the previous frame."""
        with stage("global matching"):  # joining the anchors' reference pixels
            inputs = segment_inputs(frame, anchors, previous, self.config)
        log_probs, fg_logit, instance_logits = self.segment_tensors(*inputs)
        return Segmentation(log_probs=log_probs, fg_logit=fg_logit, instance_logits=instance_logits)

    def segment_tensors(
        self,
        key: torch.Tensor,
        instance: torch.Tensor,
        skip: torch.Tensor,
        hidden: torch.Tensor | None,
        fg_keys: torch.Tensor,
        bg_keys: torch.Tensor,
        fg_probs: torch.Tensor,
        bg_probs: torch.Tensor,
        anchor_sums: torch.Tensor,
        anchor_weights: torch.Tensor,
        previous_key: torch.Tensor,
        previous_instance: torch.Tensor,
        previous_probs: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The segmentation step on tensors only (the part that is exported as a graph).

        Returns log-probabilities [K+1, h4, w4], the foreground logit [h4, w4] and the
        instance logits [K, h, w].
        """
        cfg = self.config
        height, width = key.shape[-2:]
        with stage("global matching"):
            chunk = None if torch.jit.is_tracing() else GLOBAL_CHUNK
            global_match = match_global_split(key.flatten(1), fg_keys, bg_keys, fg_probs, bg_probs, cfg.topk, chunk)
        with stage("local matching"):
            local_match = match_local(key, previous_key, previous_probs, cfg.local_radius, cfg.topk)
        with stage("vote"):
            temperature = self.log_temperature.exp() if cfg.learned else cfg.temperature
            votes = vote([global_match, local_match], temperature)
            fg_vote = (1.0 - votes[0]).clamp(1e-4, 1 - 1e-4)
            prior_logit = torch.log(fg_vote / (1.0 - fg_vote)).view(1, 1, height, width)
            instance_vote = torch.log(votes[1:] / (votes[1:].sum(0, keepdim=True) + EPS) + EPS)

        with stage("prototypes/attention"):
            sums, weights = pool_prototypes(previous_instance, previous_probs)
            sums, weights = sums + anchor_sums, weights + anchor_weights
            prototypes = F.normalize(sums / (weights[:, None] + EPS), dim=1)
            pixels = instance.flatten(1)
            if cfg.learned:
                prototypes = self.relation(prototypes)
                instance_logits = self.prototype_scale * (prototypes @ pixels) + self.vote_weight * instance_vote
            else:
                scale = cfg.prototype_weight / cfg.prototype_temperature
                instance_logits = scale * (prototypes @ pixels) + instance_vote

        with stage("decoder"):
            if cfg.learned:
                match_maps = torch.stack(
                    [
                        global_match.fg_sim,
                        global_match.bg_sim,
                        local_match.fg_sim,
                        local_match.bg_sim,
                        fg_vote,
                        1.0 - previous_probs[0].flatten(),
                    ]
                ).view(1, -1, height, width)
                fg_logit = self.decoder(match_maps, hidden, skip, prior_logit)
        with stage("upsampling"):
            if not cfg.learned:
                fg_logit = F.interpolate(prior_logit, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            instance_logits = instance_logits.view(1, -1, height, width)
            instance_up = F.interpolate(instance_logits, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            fg = fg_logit[0]
            log_probs = torch.cat([log_sigmoid(-fg), log_sigmoid(fg) + torch.log_softmax(instance_up[0], dim=0)])
        return log_probs, fg_logit[0, 0], instance_logits[0]
