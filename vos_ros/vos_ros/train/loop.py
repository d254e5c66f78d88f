"""The training loop: seeded clips, Adam with warm-up and cosine decay, checkpoints, JSON-lines log.

Clip ``b`` of step ``s`` on rank ``r`` is drawn from ``numpy.random.default_rng([seed, r, s, b])``,
so the data never depends on what ran before: a run resumed from a checkpoint (weights,
optimizer state, step, torch and Python RNG states) continues exactly like an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from vos_ros.model import VosNetwork, get_config
from vos_ros.model.factory import load_checkpoint, save_checkpoint
from vos_ros.train.clips import ClipSpec, Video, make_training_clip
from vos_ros.train.distributed import DistributedContext, average_across_ranks
from vos_ros.train.objective import ClipObjective, collate, parameter_groups, trainable_parameters
from vos_ros.train.plot import plot_losses

LOG_NAME = "train_log.jsonl"
WEIGHTS_NAME = "weights.pt"
CHECKPOINT_PATTERN = "checkpoint-{step:06d}.pt"


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings (stored in every checkpoint). A named recipe (``vos_ros.train.recipes.Recipe``)
    is these fields with the shipped defaults, plus how clips are drawn."""

    config: str
    steps: int
    batch_size: int = 1
    lr: float = 1e-3
    min_lr_fraction: float = 0.05
    warmup: int = 50
    weight_decay: float = 0.0
    clip_grad_norm: float = 1.0
    seed: int = 0
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    tune_backbone_blocks: int = 0
    backbone_lr_scale: float = 0.1
    hard_pixel_fraction: float = 1.0
    jaccard_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch size must be >= 1, got {self.steps} and {self.batch_size}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if not 0.0 < self.hard_pixel_fraction <= 1.0:
            raise ValueError(f"hard_pixel_fraction must be in (0, 1], got {self.hard_pixel_fraction}")
        if self.jaccard_weight < 0.0:
            raise ValueError(f"jaccard_weight must be >= 0, got {self.jaccard_weight}")


def learning_rate(step: int, settings: TrainSettings) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr_fraction * lr`` at the last step."""
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    floor = settings.min_lr_fraction
    return settings.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class Trainer:
    """Trains the heads of one learned config on a list of videos, writing into ``out_dir``."""

    def __init__(
        self,
        videos: list[Video],
        out_dir: str | Path,
        settings: TrainSettings,
        spec: ClipSpec | None = None,
        context: DistributedContext | None = None,
        progress: bool = True,
        metadata: dict | None = None,
    ) -> None:
        if not len(videos):
            raise ValueError("no videos to train on")
        self.videos = videos
        self.metadata = dict(metadata or {})
        self.out_dir = Path(out_dir)
        self.settings = settings
        self.context = context or DistributedContext(0, 1, torch.device("cpu"))
        config = get_config(settings.config)
        self.spec = spec or ClipSpec(short_side=config.training_scale)
        self.progress = progress and self.context.is_main
        torch.manual_seed(settings.seed)
        self.network = VosNetwork(config).to(self.context.device)
        self.objective = ClipObjective(
            self.network, settings.tune_backbone_blocks, settings.hard_pixel_fraction, settings.jaccard_weight
        )
        self.optimizer = torch.optim.AdamW(
            parameter_groups(self.network, settings.backbone_lr_scale),
            lr=settings.lr,
            weight_decay=settings.weight_decay,
        )
        self.step = 0
        if self.context.enabled:
            ids = [self.context.device.index] if self.context.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.objective, device_ids=ids, broadcast_buffers=False)
        else:
            self.model = self.objective

    @property
    def log_path(self) -> Path:
        return self.out_dir / LOG_NAME

    def initialise_from(self, path: str | Path) -> None:
        """Start from the weights of another run (e.g. stage 1) with a fresh optimizer and step 0."""
        checkpoint = load_checkpoint(path)
        if checkpoint["config"] != self.settings.config:
            raise ValueError(f"weights {path} are for config {checkpoint['config']!r}, not {self.settings.config!r}")
        self.network.load_state_dict(checkpoint["state_dict"], strict=True)

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint written by this trainer (same config)."""
        checkpoint = load_checkpoint(path)
        for key in ("optimizer", "step", "rng", "settings"):
            if key not in checkpoint:
                raise ValueError(f"{path} is a weights file, not a training checkpoint (no {key!r})")
        if checkpoint["config"] != self.settings.config:
            raise ValueError(f"checkpoint {path} is for config {checkpoint['config']!r}, not {self.settings.config!r}")
        self.network.load_state_dict(checkpoint["state_dict"], strict=True)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.step = int(checkpoint["step"])
        _restore_rng_states(checkpoint["rng"])
        if self.context.is_main and self.log_path.exists():
            kept = [line for line in self.log_path.read_text().splitlines() if json.loads(line)["step"] <= self.step]
            self.log_path.write_text("".join(line + "\n" for line in kept))

    def recipe(self) -> dict:
        """The training settings and clip options (plus the run's metadata, e.g. its named recipe and
        what it started from), stored in every checkpoint and weights file."""
        return {**self.metadata, "settings": asdict(self.settings), "clips": asdict(self.spec)}

    def save_checkpoint(self) -> Path:
        """Write ``checkpoint-<step>.pt`` (keeping the newest ``keep_checkpoints``); main rank only."""
        path = self.out_dir / CHECKPOINT_PATTERN.format(step=self.step)
        save_checkpoint(
            self.network,
            path,
            optimizer=self.optimizer.state_dict(),
            step=self.step,
            rng=_rng_states(),
            **self.recipe(),
        )
        for stale in checkpoint_paths(self.out_dir)[: -self.settings.keep_checkpoints]:
            stale.unlink()
        return path

    def batch(self, step: int) -> dict:
        """The clips of ``step`` for this rank, as model inputs."""
        clips = [
            make_training_clip(
                self.videos, self.spec, np.random.default_rng([self.settings.seed, self.context.rank, step, b])
            )
            for b in range(self.settings.batch_size)
        ]
        return collate(clips, self.context.device)

    def train_step(self) -> dict:
        """One optimisation step; returns its log record (losses averaged over ranks)."""
        started = time.perf_counter()
        lr = learning_rate(self.step, self.settings)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        self.model.train()
        losses = self.model(**self.batch(self.step))
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable_parameters(self.network), self.settings.clip_grad_norm)
        self.optimizer.step()
        self.step += 1
        values = average_across_ranks({name: float(value.detach()) for name, value in losses.items()}, self.context)
        return {
            "step": self.step,
            **{f"loss_{name}": value for name, value in values.items()},
            "grad_norm": float(grad_norm),
            "lr": lr,
            "s_per_step": time.perf_counter() - started,
        }

    def run(self) -> VosNetwork:
        """Train up to ``settings.steps``; write log, checkpoints, ``weights.pt`` and the loss curve."""
        if self.context.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        total = self.settings.steps
        with tqdm(total=total, initial=self.step, unit="step", disable=not self.progress, file=sys.stderr) as bar:
            while self.step < total:
                record = self.train_step()
                if self.context.is_main:
                    with self.log_path.open("a") as log:
                        log.write(json.dumps(record) + "\n")
                    if self.step % self.settings.checkpoint_every == 0 or self.step == total:
                        self.save_checkpoint()
                bar.set_postfix(loss=f"{record['loss_total']:.3f}", s_step=f"{record['s_per_step']:.2f}")
                bar.update(1)
        self.network.eval()
        if self.context.is_main:
            save_checkpoint(self.network, self.out_dir / WEIGHTS_NAME, step=self.step, **self.recipe())
            plot_losses(read_log(self.log_path), self.out_dir / "loss_curve.png")
        return self.network


def checkpoint_paths(folder: str | Path) -> list[Path]:
    """The training checkpoints in ``folder``, oldest first (their names sort by step)."""
    return sorted(Path(folder).glob(CHECKPOINT_PATTERN.replace("{step:06d}", "*")))


def read_log(path: str | Path) -> list[dict]:
    """The records of a JSON-lines training log."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
