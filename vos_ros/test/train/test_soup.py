"""Weight averaging: the soup is the element-wise mean, loads strictly, and refuses mixed checkpoints."""

import pytest
import torch

from vos_ros.cli.soup import main as soup_main
from vos_ros.model import build_network
from vos_ros.model.factory import load_checkpoint, save_checkpoint
from vos_ros.train.soup import average_checkpoints


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, fast_network):
    """Two checkpoints of the fast network whose weights differ by known offsets."""
    folder = tmp_path_factory.mktemp("soup")
    paths = []
    for index, offset in enumerate((0.25, -0.75)):
        network = build_network("fast", weights=None, device="cpu")
        network.load_state_dict(fast_network.state_dict())
        with torch.no_grad():
            for tensor in network.state_dict().values():
                if tensor.is_floating_point():
                    tensor.add_(offset)
        save_checkpoint(network, folder / f"run{index}.pt", step=100 + index)
        paths.append(folder / f"run{index}.pt")
    return paths


def test_soup_is_the_mean_and_loads_strictly(two_runs, fast_network, tmp_path):
    out = tmp_path / "soup.pt"
    assert soup_main([*map(str, two_runs), "--out", str(out)]) == 0
    soup = load_checkpoint(out)
    assert soup["config"] == "fast" and soup["soup_of"] == [str(p) for p in two_runs]
    base = fast_network.state_dict()
    floats = [name for name, tensor in base.items() if tensor.is_floating_point()]
    assert floats
    for name in floats:  # (0.25 + -0.75) / 2 = -0.25 from the base weights
        torch.testing.assert_close(soup["state_dict"][name], base[name] - 0.25, atol=1e-5, rtol=0)
    for name in set(base) - set(floats):  # counters come from the first checkpoint unchanged
        assert torch.equal(soup["state_dict"][name], load_checkpoint(two_runs[0])["state_dict"][name])
    network = build_network(weights=out, device="cpu")  # strict load
    assert network.config.name == "fast"


def test_soup_refuses_one_checkpoint_or_mixed_configs(two_runs, tmp_path, capsys):
    assert soup_main([str(two_runs[0]), "--out", str(tmp_path / "x.pt")]) == 2
    assert "at least two checkpoints" in capsys.readouterr().err
    other = load_checkpoint(two_runs[1])
    other["config"] = "full"
    torch.save(other, tmp_path / "full.pt")
    with pytest.raises(ValueError, match="is for config 'full'"):
        average_checkpoints([two_runs[0], tmp_path / "full.pt"])
    other["config"] = "fast"
    name = next(iter(other["state_dict"]))
    other["state_dict"][name] = torch.zeros(3)
    torch.save(other, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match="has shape"):
        average_checkpoints([two_runs[0], tmp_path / "shape.pt"])
    assert not (tmp_path / "x.pt").exists()
