"""The prompt head: prompt maps, one backbone pass for any number of objects, small strict weights."""

import numpy as np
import pytest
import torch

from vos_ros.model import build_network
from vos_ros.model.prompt import (
    PROMPT_CHANNELS,
    PROMPT_WEIGHTS,
    Prompt,
    PromptHead,
    PromptModel,
    backbone_fingerprint,
    build_prompt_model,
    load_prompt_head,
    object_probabilities,
    prompt_maps,
)


def test_prompt_maps_mark_the_box_and_the_clicks():
    prompts = [Prompt((16.0, 8.0, 48.0, 40.0), ((26.0, 22.0, True), (42.0, 38.0, False))), Prompt((0, 0, 8, 8))]
    maps = prompt_maps(prompts, (16, 16), (64, 64), torch.device("cpu"))
    assert maps.shape == (2, PROMPT_CHANNELS, 16, 16)
    inside = maps[0, 0].numpy() > 0.5
    rows, cols = np.nonzero(inside)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 9, 4, 11)  # cells whose centres are in the box
    assert maps[1, 0].sum() == 4
    positive, negative = maps[0, 3], maps[0, 4]
    assert divmod(int(positive.argmax()), 16) == (5, 6) and divmod(int(negative.argmax()), 16) == (9, 10)
    assert maps[1, 3:].abs().sum() == 0


def test_objects_share_one_backbone_pass_and_compete_for_pixels():
    calls = []

    class CountingBackbone(torch.nn.Module):
        def __init__(self, backbone):
            super().__init__()
            self.inner = backbone

        def forward(self, rgb):
            calls.append(rgb.shape)
            return self.inner(rgb)

    torch.manual_seed(0)
    model = PromptModel(PromptHead().eval(), CountingBackbone(build_network("matching", device="cpu").backbone))
    rgb = torch.rand(1, 3, 96, 128)
    for count in (1, 6):
        prompts = [Prompt((10.0 * k, 5.0, 10.0 * k + 40, 60.0)) for k in range(count)]
        probs = model.predict(rgb, prompts)
        assert probs.shape == (count + 1, 24, 32)
        assert torch.allclose(probs.sum(0), torch.ones(24, 32), atol=1e-5)
    assert len(calls) == 2
    logits = torch.tensor([[[2.0]], [[1.0]]])
    assert torch.allclose(object_probabilities(logits).sum(0), torch.ones(1, 1))


def test_the_shipped_weights_are_small_strict_and_match_the_full_backbone():
    assert PROMPT_WEIGHTS.is_file()
    assert PROMPT_WEIGHTS.stat().st_size < 4 * 1024 * 1024
    checkpoint = torch.load(PROMPT_WEIGHTS, map_location="cpu", weights_only=True)
    assert checkpoint["backbone"] == "full"
    head = load_prompt_head()
    assert not head.training
    expected = checkpoint["backbone_fingerprint"]
    network = build_network("full", device="cpu")
    if backbone_fingerprint(network.backbone) == pytest.approx(expected, rel=1e-6):
        assert build_prompt_model(network).backbone is network.backbone  # the head's backbone: shared
    for other in (build_network("matching", device="cpu"), perturbed_full()):
        model = build_prompt_model(other)  # another backbone: the head runs the one stored with it
        assert model.backbone is not other.backbone
        assert backbone_fingerprint(model.backbone) == pytest.approx(expected, rel=1e-6)


def perturbed_full():
    """A full network whose backbone differs from the shipped one (as after retraining the tracker)."""
    network = build_network("full", device="cpu")
    with torch.no_grad():
        network.backbone._blocks[-1]._project_conv.weight.mul_(1.5)
    return network


def test_a_checkpoint_with_a_missing_key_is_refused(tmp_path):
    checkpoint = torch.load(PROMPT_WEIGHTS, map_location="cpu", weights_only=True)
    del checkpoint["state_dict"]["out.bias"]
    torch.save(checkpoint, tmp_path / "broken.pt")
    with pytest.raises(RuntimeError, match=r"out\.bias"):
        load_prompt_head(tmp_path / "broken.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a prompt head"):
        load_prompt_head(tmp_path / "other.pt")
