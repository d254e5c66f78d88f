"""Stable user object ids <-> tensor slots.

Ids are the pixel values of the user's label image and never change. Slots are the channel
positions (1..K) of the probability tensors; removing an object compacts the slots of the
others without renumbering any id.
"""

from __future__ import annotations

import numpy as np

# Ids are the pixel values of a uint16 label image (0 is the background).
MAX_OBJECT_ID = 65535


class ObjectManager:
    """The tracked objects in slot order, with their labels and the frame they were added."""

    def __init__(self) -> None:
        self._ids: list[int] = []
        self._labels: dict[int, str] = {}
        self._added: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, object_id: int) -> bool:
        return object_id in self._labels

    @property
    def ids(self) -> list[int]:
        """Tracked ids in slot order (slot = position + 1)."""
        return list(self._ids)

    def label(self, object_id: int) -> str:
        return self._labels[object_id]

    def added_at(self, object_id: int) -> int:
        return self._added[object_id]

    def slot(self, object_id: int) -> int:
        return self._ids.index(object_id) + 1

    def add(self, labels: dict[int, str], frame_index: int) -> list[int]:
        """Track the given ids (existing ones keep their slot, get the new label); returns the new ids."""
        new = [i for i in sorted(labels) if i not in self._labels]
        self._ids.extend(new)
        for object_id in new:
            self._added[object_id] = frame_index
        self._labels.update(labels)
        return new

    def remove(self, ids: list[int]) -> list[int]:
        """Stop tracking ``ids``; returns their former slots (ascending)."""
        slots = sorted(self.slot(i) for i in ids)
        for object_id in ids:
            self._ids.remove(object_id)
            del self._labels[object_id]
            del self._added[object_id]
        return slots

    def clear(self) -> None:
        self._ids.clear()
        self._labels.clear()
        self._added.clear()

    def slot_to_id(self) -> np.ndarray:
        """Lookup table: slot -> id (slot 0 -> 0, background)."""
        return np.array([0, *self._ids], dtype=np.uint16)

    def ids_to_slots(self, label_map: np.ndarray) -> np.ndarray:
        """Map a label image of ids to slot indices (untracked ids become background)."""
        lut = np.zeros(int(label_map.max()) + 1, dtype=np.int64)
        for slot, object_id in enumerate(self._ids, start=1):
            if object_id < lut.size:
                lut[object_id] = slot
        return lut[label_map]
