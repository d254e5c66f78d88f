"""The one way to get a network: ``build_network(config, weights, device)``."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from vos_ros.model.configs import get_config
from vos_ros.model.network import VosNetwork

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_CONFIG = "full"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; anything else must name an available device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"invalid device {device!r}: {error}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return resolved


def shipped_weights(config: str) -> Path | None:
    """The checkpoint installed with the package for ``config``, if there is one."""
    path = WEIGHTS_DIR / f"{config}.pt"
    return path if path.is_file() else None


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by ``save_checkpoint`` (ValueError if it is not one)."""
    try:
        checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise ValueError(f"cannot read weights {path}: {error}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "config" not in checkpoint:
        raise ValueError(f"{path} is not a vos_ros checkpoint (needs 'config' and 'state_dict')")
    return checkpoint


def save_checkpoint(network: VosNetwork, path: str | Path, **extra) -> None:
    """Write the network's weights with its config name (plus any ``extra`` entries)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": network.config.name, "state_dict": network.state_dict(), **extra}, Path(path))


def build_network(
    config: str | None = None,
    weights: str | Path | None = None,
    device: str | torch.device = "auto",
) -> VosNetwork:
    """Build a network in eval mode on ``device``.

    ``config`` defaults to the checkpoint's config, else ``DEFAULT_CONFIG``. ``weights``
    defaults to the checkpoint shipped for the config; learned configs without any weights
    get untrained heads (with a warning), which is only useful for speed measurements.
    """
    checkpoint = load_checkpoint(weights) if weights is not None else None
    if checkpoint is not None and config is not None and checkpoint["config"] != config:
        raise ValueError(f"weights {weights} are for config {checkpoint['config']!r}, not {config!r}")
    name = config or (checkpoint["config"] if checkpoint else DEFAULT_CONFIG)
    cfg = get_config(name)
    target = resolve_device(device)
    if checkpoint is None and cfg.learned:
        default = shipped_weights(name)
        if default is not None:
            checkpoint = load_checkpoint(default)
        else:
            warnings.warn(f"config {name!r} has no trained weights: its heads are untrained", stacklevel=2)
    network = VosNetwork(cfg, pretrained_backbone=checkpoint is None)
    if checkpoint is not None:
        network.load_state_dict(checkpoint["state_dict"], strict=True)
    # Channels-last convolution weights, like the backbone's activations (faster on CPU and GPU).
    return network.to(target, memory_format=torch.channels_last).eval()
