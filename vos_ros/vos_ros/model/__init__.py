"""Pure PyTorch model: backbone, embeddings, decoder, network factory. No I/O beyond weights."""

from vos_ros.model.configs import CONFIGS, LEARNED_CONFIGS, NetworkConfig, get_config
from vos_ros.model.factory import DEFAULT_CONFIG, build_network, resolve_device, save_checkpoint
from vos_ros.model.network import VosNetwork

__all__ = [
    "CONFIGS",
    "DEFAULT_CONFIG",
    "LEARNED_CONFIGS",
    "NetworkConfig",
    "VosNetwork",
    "build_network",
    "get_config",
    "resolve_device",
    "save_checkpoint",
]
