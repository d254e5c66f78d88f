"""Bounded reference memory: anchor frames (annotated) and the previous frame.

Memory never grows with the stream: at most ``max_anchors`` anchors (one per ``set_mask``,
the oldest dropped first; every anchor carries all objects known when it was made) plus
exactly one previous frame.
"""

from __future__ import annotations

import torch

from vos_ros.model.network import Reference


class ReferenceMemory:
    """The references the network matches the current frame against."""

    def __init__(self, max_anchors: int) -> None:
        self.max_anchors = max_anchors
        self.anchors: list[Reference] = []
        self.previous: Reference | None = None

    def add_anchor(self, reference: Reference) -> None:
        """Add an annotated frame; it also becomes the previous frame."""
        self.anchors = [*self.anchors, reference][-self.max_anchors :]
        self.previous = reference

    def add_objects(self, count: int) -> None:
        """Append ``count`` empty object channels to every stored reference.

        The anchors made so far saw the new objects as background, so from now on only their
        object pixels are matched.
        """
        if count:
            for anchor in self.anchors:
                anchor.foreground_only = True
        for ref in self._references():
            ref.probs = torch.cat([ref.probs, ref.probs.new_zeros((count, *ref.probs.shape[1:]))])

    def remove_slots(self, slots: list[int]) -> None:
        """Drop object channels; their probability goes to the background."""
        for ref in self._references():
            keep = [c for c in range(ref.probs.shape[0]) if c not in slots]
            background = ref.probs[0] + ref.probs[slots].sum(0)
            ref.probs = torch.cat([background[None], ref.probs[keep[1:]]])

    def clear(self) -> None:
        self.anchors = []
        self.previous = None

    def _references(self) -> list[Reference]:
        unique = {id(r): r for r in [*self.anchors, self.previous] if r is not None}
        return list(unique.values())
