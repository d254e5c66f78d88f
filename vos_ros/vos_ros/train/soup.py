"""Weight averaging ("model soup", Wortsman et al. 2022): the mean of several fine-tuned checkpoints.

Runs that start from the same weights (a stage-1 checkpoint) and differ only in their seed end in
one basin of the loss; the mean of their weights scores at least as well as a typical run and often
generalises better, at the inference cost of one network. Float tensors are averaged; integer
buffers (counters) are taken from the first checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vos_ros.model.factory import load_checkpoint


def average_checkpoints(paths: list[str | Path]) -> dict:
    """A checkpoint (``config``, ``state_dict``, ``soup_of``) whose weights are the mean of ``paths``'.

    Every checkpoint must be of the same config with the same tensor names and shapes (ValueError).
    """
    if len(paths) < 2:
        raise ValueError(f"averaging needs at least two checkpoints, got {len(paths)}")
    checkpoints = [load_checkpoint(path) for path in paths]
    first = checkpoints[0]
    for path, checkpoint in zip(paths[1:], checkpoints[1:]):
        if checkpoint["config"] != first["config"]:
            raise ValueError(f"{path} is for config {checkpoint['config']!r}, {paths[0]} for {first['config']!r}")
        if set(checkpoint["state_dict"]) != set(first["state_dict"]):
            raise ValueError(f"{path} and {paths[0]} do not hold the same tensors")
        for name, tensor in checkpoint["state_dict"].items():
            if tensor.shape != first["state_dict"][name].shape:
                raise ValueError(
                    f"{name} has shape {tuple(tensor.shape)} in {path}, not {tuple(first['state_dict'][name].shape)}"
                )
    state = {}
    for name, tensor in first["state_dict"].items():
        if tensor.is_floating_point():
            state[name] = torch.stack([c["state_dict"][name].float() for c in checkpoints]).mean(0).to(tensor.dtype)
        else:
            state[name] = tensor.clone()
    return {"config": first["config"], "state_dict": state, "soup_of": [str(path) for path in paths]}


def save_average(paths: list[str | Path], out: str | Path) -> dict:
    """Average ``paths`` into the checkpoint file ``out``; returns what was written."""
    soup = average_checkpoints(paths)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(soup, Path(out))
    return soup
