"""The pretrained backbone: strict checkpoint load, feature strides, TF-style padding."""

import pytest
import torch

from vos_ros.model.backbone import Backbone, EfficientNetLite0, SameConv2d, imagenet_checkpoint_path


def test_imagenet_checkpoint_loads_with_no_missing_or_unexpected_keys():
    state = torch.load(imagenet_checkpoint_path(), map_location="cpu", weights_only=True)
    result = EfficientNetLite0().load_state_dict(state, strict=False)
    assert result.missing_keys == []
    assert result.unexpected_keys == []
    assert len(state) == 296


def test_backbone_returns_strides_4_8_16_for_odd_sizes():
    backbone = Backbone(pretrained=False).eval()
    with torch.inference_mode():
        features = backbone(torch.rand(1, 3, 67, 91))
    assert {s: tuple(f.shape[-2:]) for s, f in features.items()} == {4: (17, 23), 8: (9, 12), 16: (5, 6)}
    assert {s: f.shape[1] for s, f in features.items()} == Backbone.channels


def test_same_padding_matches_tensorflow_rule_for_stride_two():
    conv = SameConv2d(1, 1, 3, stride=2, bias=False)
    torch.nn.init.ones_(conv.weight)
    x = torch.ones(1, 1, 4, 4)
    # TF pads 4 -> total 1: zero rows/cols only at the bottom/right.
    assert conv(x)[0, 0].tolist() == [[9.0, 6.0], [6.0, 4.0]]


def test_pretrained_backbone_differs_from_random_init():
    pretrained = Backbone(pretrained=True)
    random = Backbone(pretrained=False)
    assert not torch.equal(pretrained._conv_stem.weight, random._conv_stem.weight)


def test_stride16_from_stride8_is_the_forward_pass_with_gradients_only_in_the_last_blocks():
    torch.manual_seed(0)
    backbone = Backbone(pretrained=False).eval()
    rgb = torch.rand(1, 3, 70, 90)
    with torch.no_grad():
        features = backbone(rgb)
        again = backbone.stride16_from_stride8(features[8])
    torch.testing.assert_close(again, features[16])
    stride16 = backbone.stride16_from_stride8(features[8], trainable=2)
    stride16.sum().backward()
    blocks = list(backbone._blocks)
    assert all(p.grad is not None for block in blocks[-2:] for p in block.parameters())
    assert all(p.grad is None for block in blocks[:-2] for p in block.parameters())
    with pytest.raises(ValueError, match="trainable"):
        backbone.stride16_from_stride8(features[8], trainable=7)
