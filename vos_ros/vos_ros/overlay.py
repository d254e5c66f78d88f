"""The DAVIS colour palette and colour overlays of label maps (shared by the label PNG writer, the
segment command, the demo and the node). Pure numpy."""

from __future__ import annotations

import numpy as np


def davis_palette() -> list[int]:
    """The DAVIS / PASCAL VOC colour map as a flat 768-entry PIL palette (1 = dark red, 2 = green, ...)."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        code = index
        for bit in range(8):
            red |= ((code >> 0) & 1) << (7 - bit)
            green |= ((code >> 1) & 1) << (7 - bit)
            blue |= ((code >> 2) & 1) << (7 - bit)
            code >>= 3
        palette += [red, green, blue]
    return palette


_PALETTE = np.array(davis_palette(), dtype=np.uint8).reshape(256, 3)


def object_colours(label_map: np.ndarray) -> np.ndarray:
    """The DAVIS colour of every pixel's id (ids above 255 reuse colours 1..255; 0 is black)."""
    index = label_map.astype(np.int64)
    index = np.where(index > 255, (index - 1) % 255 + 1, index)
    return _PALETTE[index]


def overlay_rgb(rgb: np.ndarray, label_map: np.ndarray, alpha: float) -> np.ndarray:
    """The image with each object's pixels blended with its colour (background unchanged)."""
    out = rgb.copy()
    foreground = label_map != 0
    colours = object_colours(label_map[foreground]).astype(np.float32)
    blended = (1.0 - alpha) * rgb[foreground].astype(np.float32) + alpha * colours
    out[foreground] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out
