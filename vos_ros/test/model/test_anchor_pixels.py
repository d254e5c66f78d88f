"""The bound on an anchor's reference pixels: objects all kept, background thinned, same count for any K."""

import torch
import torch.nn.functional as F

from vos_ros.model.network import EncodedFrame, Reference


def _reference(objects: list[tuple[slice, slice]], size=(40, 60), channels=8, seed=0) -> Reference:
    generator = torch.Generator().manual_seed(seed)
    key = F.normalize(torch.randn(channels, *size, generator=generator), dim=0)  # keys are unit vectors
    frame = EncodedFrame(key=key, instance=key, skip=torch.zeros(1, 1, 1, 1), hidden=None)
    probs = torch.zeros(len(objects) + 1, *size)
    probs[0] = 1.0
    for k, (rows, cols) in enumerate(objects, start=1):
        probs[:, rows, cols] = 0.0
        probs[k, rows, cols] = 1.0
    return Reference(frame, probs)


OBJECTS = [(slice(5, 15), slice(5, 20)), (slice(25, 35), slice(30, 45)), (slice(2, 8), slice(50, 58))]


def _columns(reference: Reference, keys: torch.Tensor) -> set[int]:
    """Flat pixel indices of the key columns (keys are random, so each column is unique)."""
    flat = reference.frame.key.flatten(1)
    return {int((flat - keys[:, [i]]).abs().sum(0).argmin()) for i in range(keys.shape[1])}


def test_unbounded_split_keeps_every_pixel():
    reference = _reference(OBJECTS)
    split = reference.split_pixels()
    assert split.fg_keys.shape[1] == 150 + 150 + 48
    assert split.fg_keys.shape[1] + split.bg_keys.shape[1] == 40 * 60
    assert reference.split_pixels(budget=40 * 60).bg_keys.shape[1] == 40 * 60 - 348  # a bound not reached


def test_bound_keeps_all_object_pixels_and_fills_the_budget_with_background():
    reference = _reference(OBJECTS)
    split = reference.split_pixels(budget=1000)
    assert split.fg_keys.shape[1] == 348
    assert split.fg_keys.shape[1] + split.bg_keys.shape[1] == 1000
    assert torch.equal(split.fg_keys, reference.split_pixels().fg_keys)
    background = _columns(reference, split.bg_keys)
    assert len(background) == 652  # distinct pixels
    foreground = (reference.probs[0] < 0.5).flatten()
    assert not any(bool(foreground[i]) for i in background)
    # The soft labels follow their keys.
    flat_probs = reference.probs.flatten(1)
    order = sorted(background)
    assert torch.equal(split.bg_probs, flat_probs[:, order])


def test_background_that_looks_like_an_object_is_kept():
    reference = _reference(OBJECTS[:1])
    key = reference.frame.key
    lookalikes = [(30, 40), (31, 41), (35, 50), (2, 55)]  # background pixels with an object pixel's key
    for i, (r, c) in enumerate(lookalikes):
        key[:, r, c] = F.normalize(key[:, 7, 9] + 0.01 * (i + 1) * key[:, r, c], dim=0)
    split = reference.split_pixels(budget=600)
    background = _columns(reference, split.bg_keys)
    assert {r * 60 + c for r, c in lookalikes} <= background
    assert len(background) == 600 - 150


def test_bounded_pixel_count_does_not_depend_on_the_number_of_objects():
    counts = []
    for k in (1, 2, 3):
        split = _reference(OBJECTS[:k]).split_pixels(budget=1000)
        counts.append(split.fg_keys.shape[1] + split.bg_keys.shape[1])
    assert counts == [1000, 1000, 1000]


def test_split_is_recomputed_when_the_bound_changes():
    reference = _reference(OBJECTS)
    with torch.no_grad():
        bounded = reference.split_pixels(budget=1000)
        assert reference.split_pixels(budget=1000) is bounded  # cached
        assert reference.split_pixels().bg_keys.shape[1] == 40 * 60 - 348
