"""The network on random tensors: shapes, one pass for all objects, matching maths, factory."""

import pytest
import torch
import torch.nn.functional as F

from vos_ros.model import build_network, get_config, save_checkpoint
from vos_ros.model.embedding import NO_MATCH, match_global, match_local
from vos_ros.model.network import Reference


def _reference(network, objects, size=(64, 96), seed=0):
    generator = torch.Generator().manual_seed(seed)
    frame = network.encode(torch.rand(1, 3, *size, generator=generator))
    probs = torch.softmax(torch.randn(objects + 1, *frame.size, generator=generator) * 4, 0)
    return Reference(frame=frame, probs=probs)


@pytest.mark.parametrize("name", ["matching", "fast"])
def test_segment_outputs_normalised_log_probs_for_all_objects(name, matching_network, fast_network):
    network = matching_network if name == "matching" else fast_network
    with torch.inference_mode():
        for objects in (1, 3, 7):
            anchor = _reference(network, objects, seed=1)
            current = network.encode(torch.rand(1, 3, 64, 96))
            out = network.segment(current, [anchor], anchor)
            assert out.log_probs.shape == (objects + 1, 16, 24)
            total = out.log_probs.exp().sum(0)
            assert torch.allclose(total, torch.ones_like(total), atol=1e-4)


def test_backbone_runs_once_per_frame_whatever_the_number_of_objects(matching_network, monkeypatch):
    calls = []
    original = matching_network.backbone.forward
    monkeypatch.setattr(matching_network.backbone, "forward", lambda x: calls.append(1) or original(x))
    with torch.inference_mode():
        anchor = _reference(matching_network, 5)
        calls.clear()
        matching_network.segment(matching_network.encode(torch.rand(1, 3, 64, 96)), [anchor], anchor)
    assert len(calls) == 1


def test_match_global_nearest_foreground_and_background():
    keys = F.normalize(torch.tensor([[1.0, 0.0, 0.6], [0.0, 1.0, 0.8]]), dim=0)
    probs = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    query = F.normalize(torch.tensor([[1.0], [0.1]]), dim=0)
    result = match_global(query, keys, probs, num_fg=1, topk=2)
    assert result.fg_sim.item() == pytest.approx(float(query[:, 0] @ keys[:, 0]))
    assert result.bg_sim.item() == pytest.approx(float(query[:, 0] @ keys[:, 2]))
    assert result.cand_probs.shape == (2, 1, 2)
    assert result.cand_probs[:, 0, 0].tolist() == [0.0, 1.0]


def test_match_local_agrees_with_brute_force_window_search():
    torch.manual_seed(0)
    channels, height, width, radius, topk = 8, 11, 13, 2, 4
    query = F.normalize(torch.randn(channels, height, width), dim=0)
    key = F.normalize(torch.randn(channels, height, width), dim=0)
    probs = torch.softmax(torch.randn(3, height, width) * 3, 0)
    result = match_local(query, key, probs, radius, topk, tile=4)
    for y, x in [(0, 0), (5, 6), (10, 12), (3, 12)]:
        candidates = []
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                if 0 <= y + dy < height and 0 <= x + dx < width:
                    sim = float(query[:, y, x] @ key[:, y + dy, x + dx])
                    candidates.append((sim, probs[0, y + dy, x + dx] < 0.5, probs[:, y + dy, x + dx]))
        index = y * width + x
        fg = max((c[0] for c in candidates if c[1]), default=NO_MATCH)
        bg = max((c[0] for c in candidates if not c[1]), default=NO_MATCH)
        assert result.fg_sim[index].item() == pytest.approx(fg, abs=1e-5)
        assert result.bg_sim[index].item() == pytest.approx(bg, abs=1e-5)
        best = sorted(candidates, key=lambda c: -c[0])[:topk]
        assert torch.allclose(result.cand_sim[index], torch.tensor([c[0] for c in best]), atol=1e-5)
        assert torch.allclose(result.cand_probs[:, index], torch.stack([c[2] for c in best], 1), atol=1e-5)


def test_checkpoint_round_trip_and_config_mismatch(tmp_path, fast_network):
    path = tmp_path / "fast.pt"
    save_checkpoint(fast_network, path)
    loaded = build_network(weights=path, device="cpu")
    assert loaded.config == get_config("fast")
    for name, tensor in fast_network.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    with pytest.raises(ValueError, match="not 'full'"):
        build_network("full", weights=path, device="cpu")


def test_factory_rejects_unknown_config_bad_weights_and_missing_cuda(tmp_path):
    with pytest.raises(ValueError, match="unknown config"):
        build_network("huge", device="cpu")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read weights"):
        build_network(weights=bad, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            build_network("matching", device="cuda")
