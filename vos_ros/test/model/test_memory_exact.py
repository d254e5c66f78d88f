"""The memory savings change no value: chunked global matching and the in-place backbone ops
give bit-identical results to the whole-matrix, out-of-place computation."""

import pytest
import torch
import torch.nn.functional as F

from vos_ros.model import backbone as backbone_module
from vos_ros.model.backbone import Backbone
from vos_ros.model.embedding import match_global


@pytest.mark.parametrize("num_fg", [0, 1000, 5504])
def test_chunked_global_matching_is_exact(num_fg):
    """At the sizes of a 640x480 frame (64-d keys, one anchor of 5504 pixels)."""
    generator = torch.Generator().manual_seed(num_fg)
    query = F.normalize(torch.randn(64, 5504, generator=generator), dim=0)
    keys = F.normalize(torch.randn(64, 5504, generator=generator), dim=0)
    probs = torch.softmax(torch.randn(3, 5504, generator=generator), dim=0)
    whole = match_global(query, keys, probs, num_fg, topk=16, chunk_bytes=1 << 40)
    for chunk_bytes in (1, 5504 * 4 * 300, 5504 * 4 * 1000 + 7):  # the least rows, and ragged last chunks
        chunked = match_global(query, keys, probs, num_fg, topk=16, chunk_bytes=chunk_bytes)
        for field in ("fg_sim", "bg_sim", "cand_sim", "cand_probs"):
            assert torch.equal(getattr(whole, field), getattr(chunked, field)), (chunk_bytes, field)


def test_chunked_matching_passes_gradients():
    query = torch.randn(8, 50, requires_grad=True)
    keys = torch.randn(8, 40)
    match_global(query, keys, torch.rand(2, 40), 10, topk=4, chunk_bytes=40 * 4 * 7).cand_sim.sum().backward()
    assert query.grad is not None and query.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [(96, 130), (97, 131), (64, 64)])
def test_in_place_backbone_is_bit_identical(monkeypatch, size):
    """In CPU inference the backbone works in place and pads without copying its wide tensors
    (symmetric padding inside the convolution; for stride 2 the thin input of the expansion is
    padded instead); every feature map equals the plain out-of-place computation's, bit for bit,
    for even and odd sizes (which change where "same" padding goes)."""
    net = Backbone(pretrained=False).eval()
    with torch.no_grad():  # random statistics so that batch norm does something
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    rgb = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        in_place = net(rgb)
    monkeypatch.setattr(backbone_module, "_in_place", lambda x: False)
    with torch.inference_mode():
        reference = net(rgb)
    assert reference.keys() == in_place.keys()
    for stride in reference:
        assert torch.equal(reference[stride], in_place[stride]), stride
