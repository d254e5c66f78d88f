"""The prompt head: boxes (and clicks) to masks for every object of one frame in one pass.

It reads the frozen backbone features (strides 4, 8, 16) of the ``full`` network and, per
object, a few prompt maps drawn from the object's box and clicks (inside-the-box mask,
box-relative coordinates, positive and negative click Gaussians). Objects are a batch
dimension of the small head (the backbone runs once per frame, whatever the object count),
and their logits compete in one softmax against a fixed background logit of 0, so every
pixel goes to the background or to exactly one object.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vos_ros.model.backbone import Backbone

PROMPT_CHANNELS = 5
# Click Gaussians: standard deviation in input pixels (at the scale the head runs at).
CLICK_SIGMA = 10.0
# Box-relative coordinates are clamped to this many half-sizes of the box.
COORD_CLAMP = 3.0
BACKBONE_CONFIG = "full"
# The head runs on backbone features of the frame resized to this short side (its own backbone pass).
PROMPT_SHORT_SIDE = 320
# GrabCut iterations of the colour refinement of each mask (vos_ros.engine.prompts; 0: none).
REFINE_ITERATIONS = 3
# ... on a crop of at most REFINE_SIDE pixels on its long side, where a head probability above
# REFINE_SURE (below 1 - REFINE_SURE) fixes the pixel to the object (background).
REFINE_SIDE = 360
REFINE_SURE = 0.97
PROMPT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "prompt.pt"


@dataclass(frozen=True)
class Prompt:
    """One object's prompt in input pixels: a box (x0, y0, x1, y1) and clicks (x, y, positive)."""

    box: tuple[float, float, float, float]
    clicks: tuple[tuple[float, float, bool], ...] = ()


def _grid(size: tuple[int, int], image_size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Pixel-centre coordinates (in input pixels) of a feature grid of ``size`` over ``image_size``."""
    height, width = size
    image_h, image_w = image_size
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * (image_h / height)
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * (image_w / width)
    return ys.view(1, -1, 1), xs.view(1, 1, -1)


def prompt_maps(
    prompts: Sequence[Prompt], size: tuple[int, int], image_size: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """The prompt maps [K, PROMPT_CHANNELS, h, w] of ``prompts`` on a grid of ``size``."""
    ys, xs = _grid(size, image_size, device)
    boxes = torch.tensor([p.box for p in prompts], dtype=torch.float32, device=device).view(-1, 4, 1, 1)
    x0, y0, x1, y1 = boxes.unbind(1)
    half_w = ((x1 - x0) / 2).clamp(min=1.0)
    half_h = ((y1 - y0) / 2).clamp(min=1.0)
    dx = ((xs - (x0 + x1) / 2) / half_w).clamp(-COORD_CLAMP, COORD_CLAMP) / COORD_CLAMP
    dy = ((ys - (y0 + y1) / 2) / half_h).clamp(-COORD_CLAMP, COORD_CLAMP) / COORD_CLAMP
    inside = ((xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)).float()
    clicks = torch.zeros(len(prompts), 2, *size, device=device)
    for index, prompt in enumerate(prompts):
        for x, y, positive in prompt.clicks:
            blob = torch.exp(-((xs[0] - x) ** 2 + (ys[0] - y) ** 2) / (2 * CLICK_SIGMA**2))
            channel = 0 if positive else 1
            clicks[index, channel] = torch.maximum(clicks[index, channel], blob)
    return torch.cat([inside[:, None], dx.expand_as(inside)[:, None], dy.expand_as(inside)[:, None], clicks], dim=1)


class _Residual(nn.Module):
    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.conv(x))


class PromptHead(nn.Module):
    """Backbone features + per-object prompt maps -> one logit map per object at stride 4."""

    def __init__(self, width: int = 48, skip_width: int = 24):
        super().__init__()
        self.arch = {"width": width, "skip_width": skip_width}
        ch = Backbone.channels
        self.reduce16 = nn.Conv2d(ch[16], width, 1)
        self.reduce8 = nn.Conv2d(ch[8], width, 1)
        self.skip = nn.Conv2d(ch[4], skip_width, 1)
        self.enter16 = nn.Conv2d(width + PROMPT_CHANNELS, width, 3, padding=1)
        self.body16 = nn.Sequential(*[_Residual(width, d) for d in (1, 2, 4, 8)])
        self.enter8 = nn.Conv2d(width + PROMPT_CHANNELS, width, 3, padding=1)
        self.body8 = _Residual(width, 1)
        self.up4 = nn.Conv2d(width, skip_width, 1)
        self.refine4 = nn.Conv2d(skip_width + 1, skip_width, 3, padding=1)
        self.out = nn.Conv2d(skip_width, 1, 1)

    def image_features(self, features: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """The per-image part (shared by all objects): reduced features at strides 4, 8, 16 of a batch of one."""
        return {
            16: F.relu(self.reduce16(features[16].float())),
            8: F.relu(self.reduce8(features[8].float())),
            4: self.skip(features[4].float()),
        }

    def forward(
        self, shared: dict[int, torch.Tensor], prompts: Sequence[Prompt], image_size: tuple[int, int]
    ) -> torch.Tensor:
        """Logits [K, h4, w4] of the K objects (background logit is 0)."""
        device = shared[8].device
        count = len(prompts)
        maps16 = prompt_maps(prompts, tuple(shared[16].shape[-2:]), image_size, device)
        maps8 = prompt_maps(prompts, tuple(shared[8].shape[-2:]), image_size, device)
        inside4 = prompt_maps(prompts, tuple(shared[4].shape[-2:]), image_size, device)[:, :1]
        x = F.relu(self.enter16(torch.cat([shared[16].expand(count, -1, -1, -1), maps16], 1)))
        x = self.body16(x)
        x = F.interpolate(x, size=shared[8].shape[-2:], mode="bilinear", align_corners=False) + shared[8]
        x = self.body8(F.relu(self.enter8(torch.cat([x, maps8], 1))))
        x = F.interpolate(self.up4(x), size=shared[4].shape[-2:], mode="bilinear", align_corners=False) + shared[4]
        x = F.relu(self.refine4(torch.cat([F.relu(x), inside4], 1)))
        return self.out(x)[:, 0]


def object_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over background (logit 0) and the K objects: [K+1, h, w], channel 0 the background."""
    background = torch.zeros_like(logits[:1])
    return torch.softmax(torch.cat([background, logits]), dim=0)


def save_prompt_head(head: PromptHead, path: str | Path, backbone: nn.Module | None = None, **extra) -> None:
    """Write the head's weights (fp16, small) with the backbone config they were trained on, and that
    backbone's weights and fingerprint (the head reads its features, whatever tracking weights ship)."""
    state = {key: value.half() for key, value in head.state_dict().items()}
    if backbone is not None:
        extra["backbone_fingerprint"] = backbone_fingerprint(backbone)
        extra["backbone_state_dict"] = {
            key: value.detach().cpu().clone() for key, value in backbone.state_dict().items()
        }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    record = {"kind": "prompt_head", "backbone": BACKBONE_CONFIG, "arch": head.arch, "state_dict": state, **extra}
    torch.save(record, Path(path))


def load_prompt_head(path: str | Path | None = None, device: str | torch.device = "cpu") -> PromptHead:
    """The prompt head from ``path`` (default: the weights shipped with the package), loaded strictly."""
    return _head_from(_read_checkpoint(path), device)


def _read_checkpoint(path: str | Path | None) -> dict:
    """The prompt head checkpoint at ``path`` (default: the shipped one), checked to be one."""
    path = Path(path) if path is not None else PROMPT_WEIGHTS
    if not path.is_file():
        raise ValueError(f"no prompt head weights at {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("kind") != "prompt_head":
        raise ValueError(f"{path} is not a prompt head checkpoint")
    return checkpoint


def load_prompt_backbone(path: str | Path | None = None) -> Backbone | None:
    """The backbone stored with the prompt head at ``path`` (default: the shipped one), in eval mode on
    the CPU; None for a checkpoint that stores none (it read the ``full`` network's)."""
    return _backbone_from(_read_checkpoint(path))


def _backbone_from(checkpoint: dict) -> Backbone | None:
    if "backbone_state_dict" not in checkpoint:
        return None
    backbone = Backbone(pretrained=False)
    backbone.load_state_dict(checkpoint["backbone_state_dict"], strict=True)
    return backbone.eval()


def _head_from(checkpoint: dict, device: str | torch.device) -> PromptHead:
    head = PromptHead(**checkpoint.get("arch", {}))
    head.load_state_dict({key: value.float() for key, value in checkpoint["state_dict"].items()}, strict=True)
    return head.to(device).eval()


def backbone_fingerprint(backbone: nn.Module) -> float:
    """A number that changes when any backbone weight does (to check the head's features match)."""
    with torch.no_grad():
        return float(sum(p.double().abs().sum() for p in backbone.state_dict().values() if p.is_floating_point()))


def backbone_digest(backbone: nn.Module) -> str:
    """The SHA-256 of every weight and buffer of ``backbone``: equal exactly when the backbones are."""
    digest = hashlib.sha256()
    for key, value in backbone.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class PromptModel:
    """The frozen ``full`` backbone with the prompt head: an image and prompts -> object probabilities."""

    def __init__(
        self,
        head: PromptHead,
        backbone: nn.Module,
        short_side: int = PROMPT_SHORT_SIDE,
        refine_iterations: int = REFINE_ITERATIONS,
        refine_side: int = REFINE_SIDE,
        refine_sure: float = REFINE_SURE,
    ):
        self.head = head
        self.backbone = backbone
        self.short_side = short_side
        self.refine_iterations = refine_iterations  # colour refinement of the masks (0: the head's masks)
        self.refine_side = refine_side
        self.refine_sure = refine_sure

    @torch.inference_mode()
    def predict(self, rgb: torch.Tensor, prompts: Sequence[Prompt]) -> torch.Tensor:
        """Probabilities [K+1, h4, w4] (background first) for an input [1, 3, h, w] and prompts in its pixels."""
        features = self.backbone(rgb)
        logits = self.head(self.head.image_features(features), prompts, tuple(rgb.shape[-2:]))
        return object_probabilities(logits)


def build_prompt_model(network=None, weights: str | Path | None = None) -> PromptModel:
    """The prompt model: it shares ``network``'s backbone when that is the one the head was trained
    on, else it runs the backbone stored with the head (``backbone_state_dict``), so new tracking
    weights never change the features the head reads."""
    from vos_ros.model.factory import build_network

    device = network.device if network is not None else torch.device("cpu")
    checkpoint = _read_checkpoint(weights)  # read once: it holds the head and the backbone it read
    head = _head_from(checkpoint, device)
    expected = checkpoint.get("backbone_fingerprint")
    if network is not None and network.config.name == BACKBONE_CONFIG:
        backbone = network.backbone
        if expected is None or abs(backbone_fingerprint(backbone) - expected) <= 1e-6 * abs(expected):
            return PromptModel(head, backbone)
    stored = _backbone_from(checkpoint)
    if stored is not None:
        return PromptModel(head, stored.to(device))
    return PromptModel(head, build_network(BACKBONE_CONFIG, device=device).backbone)
