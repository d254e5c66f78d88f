"""Named network configurations."""

from __future__ import annotations

from dataclasses import dataclass

# Smallest input short side the network is run at (the stride-16 grid needs a few cells).
MIN_SHORT_SIDE = 32


@dataclass(frozen=True)
class NetworkConfig:
    """Hyper-parameters of one network variant.

    ``learned`` False means the training-free baseline: L2-normalised backbone features
    serve as both embeddings and fixed rules replace the fusion head and decoder.
    ``short_side`` is the scale frames are segmented at; ``train_short_side`` the scale
    training clips are drawn at (None: the same). ``anchor_pixels`` bounds the pixels of one
    anchor that global matching compares every pixel with (None: all of them): object pixels are all
    kept, then the background pixels most like them, the rest of the background thinned evenly (see
    ``Reference.split_pixels``).
    """

    name: str
    learned: bool
    short_side: int
    train_short_side: int | None = None
    key_dim: int = 64
    instance_dim: int = 64
    hidden: int = 48
    topk: int = 16
    local_radius: int = 4
    temperature: float = 0.05
    prototype_temperature: float = 0.1
    prototype_weight: float = 0.5
    max_anchors: int = 3
    anchor_pixels: int | None = None

    @property
    def training_scale(self) -> int:
        """Short side that training clips are drawn at."""
        return self.train_short_side or self.short_side


CONFIGS = {
    "matching": NetworkConfig(name="matching", learned=False, short_side=384),
    "full": NetworkConfig(name="full", learned=True, short_side=512, train_short_side=384, anchor_pixels=4096),
    "fast": NetworkConfig(
        name="fast",
        learned=True,
        short_side=240,
        key_dim=32,
        instance_dim=32,
        hidden=32,
        local_radius=3,
        anchor_pixels=768,
    ),
}

# The configs that have weights to train and ship.
LEARNED_CONFIGS = sorted(name for name, config in CONFIGS.items() if config.learned)


def get_config(name: str) -> NetworkConfig:
    """The config called ``name`` (ValueError naming the choices otherwise)."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown config {name!r}; choose one of {sorted(CONFIGS)}") from None
