"""Session.add_objects: boxes (and clicks) -> masks with the shipped prompt head, then tracking."""

import cv2
import numpy as np
import pytest

from vos_ros.engine import (
    InvalidImageError,
    InvalidMaskError,
    InvalidPromptError,
    TooManyObjectsError,
    UnknownObjectError,
)
from vos_ros.engine.prompts import check_prompts, prompt_label_map, refine_with_colour, shared_prompt_model
from vos_ros.engine.session import Session, to_network_input
from vos_ros.model import build_network
from vos_ros.model.prompt import Prompt
from vos_ros.synthetic import make_clip

SIZE = (240, 320)


def _iou(a, b):
    union = (a | b).sum()
    return (a & b).sum() / union if union else 1.0


def _texture(rng, height, width, base, amplitude=45.0):
    coarse = rng.normal(0.0, amplitude, size=(max(2, height // 8), max(2, width // 8), 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.asarray(base, np.float32) + smooth + rng.normal(0, 8, (height, width, 3)), 0, 255)


def _scene(seed, shapes):
    """A textured background with textured objects; shapes: (kind, cx, cy, half_w, half_h) -> image, label map."""
    rng = np.random.default_rng(seed)
    height, width = SIZE
    image = _texture(rng, height, width, rng.uniform(90, 170, 3))
    labels = np.zeros(SIZE, np.uint16)
    for index, (kind, cx, cy, hw, hh) in enumerate(shapes, start=1):
        mask = np.zeros(SIZE, np.uint8)
        if kind == "ellipse":
            cv2.ellipse(mask, (cx, cy), (hw, hh), 0, 0, 360, 1, -1)
        else:
            cv2.rectangle(mask, (cx - hw, cy - hh), (cx + hw, cy + hh), 1, -1)
        colour = rng.uniform(0, 255, 3)
        while np.abs(colour - image.reshape(-1, 3).mean(0)).max() < 80:
            colour = rng.uniform(0, 255, 3)
        image[mask > 0] = _texture(rng, height, width, colour, 25.0)[mask > 0]
        labels[mask > 0] = index
    return image.astype(np.uint8), labels


def _box(mask, grow=0.05):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    w, h = cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]
    return (cols[0] - grow * w, rows[0] - grow * h, cols[-1] + 1 + grow * w, rows[-1] + 1 + grow * h)


@pytest.fixture(scope="module")
def full_network():
    return build_network("full", device="cpu")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_box_recovers_the_object(full_network, seed):
    rng = np.random.default_rng(seed)
    cx, cy = int(rng.integers(100, 220)), int(rng.integers(80, 160))
    kind = "ellipse" if seed % 2 == 0 else "rectangle"
    image, truth = _scene(seed, [(kind, cx, cy, int(rng.integers(35, 70)), int(rng.integers(30, 60)))])
    session = Session(full_network)
    result = session.add_objects(image, [_box(truth == 1)])
    assert result.ids == [1]
    assert result.label_map.shape == SIZE and result.label_map.dtype == np.uint16
    assert _iou(result.label_map == 1, truth == 1) >= 0.8


def _coarse_guess(mask, cell=32, shift=10):
    """A poor head-like first guess: the mask averaged over cells of ``cell`` pixels, blurred, moved by
    ``shift`` pixels right, squashed to 0.2-0.8."""
    mask = np.roll(mask, shift, axis=1)
    height, width = mask.shape
    small = cv2.resize(mask.astype(np.float32), (width // cell, height // cell), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return 0.2 + 0.6 * cv2.GaussianBlur(up, (0, 0), cell / 2)


def test_colour_refinement_sharpens_a_coarse_mask():
    image, truth = _scene(3, [("ellipse", 160, 120, 60, 45)])
    guess = _coarse_guess(truth == 1)
    refined = refine_with_colour(image, guess, Prompt(_box(truth == 1)), iterations=5)
    assert refined.shape == SIZE and refined.dtype == bool
    assert _iou(guess > 0.5, truth == 1) < 0.8
    assert _iou(refined, truth == 1) >= 0.95
    assert not refined[:, :90].any() and not refined[:, 230:].any()  # nothing outside the box


def test_colour_refinement_obeys_clicks():
    image, truth = _scene(7, [("ellipse", 115, 120, 50, 55), ("rectangle", 210, 120, 45, 50)])
    union = _box(truth > 0)
    guess = _coarse_guess(truth > 0, cell=8, shift=0)  # the head's guess covers both objects
    both = refine_with_colour(image, guess, Prompt(union), iterations=5)
    # after a negative click on B the head answers weakly: B just under one half
    weak = np.where(_coarse_guess(truth == 2, cell=8, shift=0) > 0.5, 0.45, guess)
    only_a = refine_with_colour(image, weak, Prompt(union, ((115.0, 120.0, True), (210.0, 120.0, False))), 5)
    assert (both & (truth == 2)).sum() > 0.8 * (truth == 2).sum()
    assert (only_a & (truth == 2)).sum() < 0.1 * (truth == 2).sum()
    assert _iou(only_a, truth == 1) >= 0.9


@pytest.mark.parametrize("iterations", [0, 5])
def test_refinement_is_a_setting_of_the_prompt_model(full_network, iterations):
    """refine_iterations 0 gives the head's own masks; 5 refines them by colour (a different mask here)."""
    image, truth = _scene(0, [("ellipse", 150, 120, 60, 45)])
    model = shared_prompt_model(full_network)
    kept = model.refine_iterations
    try:
        model.refine_iterations = iterations
        label_map = Session(full_network).add_objects(image, [_box(truth == 1)]).label_map
        rgb = to_network_input(image, model.short_side, full_network.device)
        head_only = prompt_label_map(model, rgb, [Prompt(_box(truth == 1))], SIZE, [1])
    finally:
        model.refine_iterations = kept
    assert (label_map == head_only).all() == (iterations == 0)
    assert _iou(label_map == 1, truth == 1) >= 0.8


def test_two_boxes_over_touching_objects_give_two_disjoint_masks(full_network):
    image, truth = _scene(5, [("rectangle", 110, 120, 50, 60), ("ellipse", 205, 120, 45, 55)])
    assert ((truth == 1) & (np.roll(truth, -2, axis=1) == 2)).any()  # they touch
    session = Session(full_network)
    result = session.add_objects(image, [_box(truth == 1), _box(truth == 2)], labels=["box", "ball"])
    assert result.ids == [1, 2]
    for object_id in (1, 2):
        assert _iou(result.label_map == object_id, truth == object_id) >= 0.7
    assert {o.id: o.label for o in session.step(image).objects} == {1: "box", 2: "ball"}


def test_a_negative_click_removes_the_region_it_marks(full_network):
    image, truth = _scene(7, [("ellipse", 115, 120, 50, 55), ("rectangle", 210, 120, 45, 50)])
    union = _box(truth > 0)
    inside_a, inside_b = (115.0, 120.0), (210.0, 120.0)
    session = Session(full_network)
    without = session.add_objects(image, [union], points=[[inside_a]], append=False).label_map == 1
    with_negative = (
        session.add_objects(
            image, [union], points=[[inside_a, inside_b]], point_labels=[[1, 0]], append=False
        ).label_map
        == 1
    )
    part_b = truth == 2
    # The shipped head answers negative clicks weakly (here 63 % of B covered without, 49 % with the click):
    # the click must take away at least 15 % of what the mask covered of the marked object, and not hurt A.
    assert (without & part_b).sum() > 0.3 * part_b.sum()
    assert (with_negative & part_b).sum() < 0.85 * (without & part_b).sum()
    assert _iou(with_negative, truth == 1) >= _iou(without, truth == 1) - 0.02


def test_added_objects_are_tracked_and_append_keeps_the_others(full_network):
    clip = make_clip(num_objects=2, num_frames=8, size=SIZE, seed=4)
    session = Session(full_network)
    assert session.add_objects(clip.frames[0], [_box(clip.labels[0] == 1)], labels=["a"]).ids == [1]
    session.step(clip.frames[1])
    added = session.add_objects(clip.frames[1], [_box(clip.labels[1] == 2)], labels=["b"])
    assert added.ids == [2]
    assert session.object_ids == [1, 2]
    ious = {1: [], 2: []}
    for frame, truth in zip(clip.frames[2:], clip.labels[2:]):
        labels = session.step(frame).label_map
        for object_id in ious:
            ious[object_id].append(_iou(labels == object_id, truth == object_id))
    assert min(np.mean(v) for v in ious.values()) >= 0.6
    replaced = session.add_objects(clip.frames[-1], [_box(clip.labels[-1] == 2)], append=False)
    assert replaced.ids == [1] and session.object_ids == [1]


def _state(session):
    last = None if session._last_labels is None else session._last_labels.copy()
    return session.object_ids, session.frame_index, len(session.memory.anchors), last


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"boxes": [[50, 50, 50, 90]]}, InvalidPromptError, "empty or inverted"),
        ({"boxes": [[90, 50, 40, 90]]}, InvalidPromptError, "empty or inverted"),
        ({"boxes": [[400, 10, 500, 90]]}, InvalidPromptError, "outside"),
        ({"boxes": [[-90, -50, -10, -5]]}, InvalidPromptError, "outside"),
        ({"boxes": [[10, 10, float("nan"), 90]]}, InvalidPromptError, "NaN"),
        ({"boxes": []}, InvalidPromptError, "K >= 1"),
        ({"boxes": [[10, 10, 50, 50]], "points": [[[20, 20]], [[30, 30]]]}, InvalidPromptError, "name no box"),
        ({"boxes": [[10, 10, 50, 50]], "points": [[[20, 500]]]}, InvalidPromptError, "outside"),
        ({"boxes": [[10, 10, 50, 50]], "points": [[[20, 20]]], "point_labels": [[1, 0]]}, InvalidPromptError, "labels"),
        ({"boxes": [[10, 10, 50, 50]], "points": [[[20, 20]]], "point_labels": [[5]]}, InvalidPromptError, "1 \\(pos"),
        ({"boxes": [[10, 10, 50, 50]], "points": [[[20, 20, 30]]]}, InvalidPromptError, "N x 2"),
        ({"boxes": [[10, 10, 50, 50]], "points": [[["a", 20]]]}, InvalidPromptError, "numbers"),
        ({"boxes": [[10, 10, 50, 50]], "labels": ["a", "b"]}, InvalidMaskError, "labels"),
        ({"boxes": [[10, 10, 50, 50], [60, 60, 90, 90], [100, 100, 130, 130]]}, TooManyObjectsError, "limit"),
    ],
)
def test_bad_prompts_are_refused_and_change_nothing(fast_network, kwargs, error, words):
    clip = make_clip(num_objects=2, num_frames=3, size=SIZE, seed=1)
    session = Session(fast_network, max_objects=3)
    session.set_mask(clip.frames[0], clip.labels[0])
    session.step(clip.frames[1])
    before = _state(session)
    with pytest.raises(error, match=words):
        session.add_objects(clip.frames[1], **kwargs)
    after = _state(session)
    assert after[:3] == before[:3] and np.array_equal(after[3], before[3])


def test_a_bad_image_is_refused(fast_network):
    session = Session(fast_network)
    with pytest.raises(InvalidImageError):
        session.add_objects(np.zeros((50, 50), np.uint8), [[1, 1, 20, 20]])
    assert not session.initialized


def test_one_point_may_be_given_flat():
    flat = check_prompts([[10, 10, 50, 50]], [[20, 30]], None, (100, 100))
    nested = check_prompts([[10, 10, 50, 50]], [[[20, 30]]], [[1]], (100, 100))
    assert flat == nested and flat[0].clicks == ((20.0, 30.0, True),)


def test_a_box_partly_outside_the_image_is_clipped(fast_network):
    clip = make_clip(num_objects=1, num_frames=2, size=SIZE, seed=2)
    box = _box(clip.labels[0] == 1)
    session = Session(fast_network)
    result = session.add_objects(clip.frames[0], [(box[0] - 400, box[1], box[2], box[3] + 400)])
    assert result.ids == [1] and (result.label_map == 1).any()


def test_colour_refinement_is_deterministic():
    """GrabCut's k-means draws from OpenCV's generator: the same prompt gives the same mask whatever ran before
    (on this mosaic of many colours, unseeded runs after other draws differed by up to 900 pixels)."""
    rng = np.random.default_rng(1)
    cells = rng.integers(0, 255, (12, 16, 3)).astype(np.uint8)
    image = cv2.resize(cells, (160, 120), interpolation=cv2.INTER_NEAREST)
    image = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
    guess = np.full((120, 160), 0.4, np.float32)
    guess[30:90, 40:120] = 0.6
    prompt = Prompt((20.0, 15.0, 140.0, 105.0))
    first = refine_with_colour(image, guess, prompt, iterations=5)
    for seed in range(4):
        cv2.setRNGSeed(1000 + seed)
        cv2.randu(np.zeros((7, 7)), 0, 1)
        assert (refine_with_colour(image, guess, prompt, iterations=5) == first).all()


def test_colour_refinement_keeps_what_the_head_is_sure_of():
    """Pixels above ``sure`` (below 1 - ``sure``) are the head's; the rest are GrabCut's to decide."""
    image, truth = _scene(3, [("ellipse", 160, 120, 60, 45)])
    guess = np.full(SIZE, 0.05, np.float32)
    guess[100:140, 140:180] = 0.9  # a square inside the ellipse, the head's answer
    prompt = Prompt(_box(truth == 1))
    kept = refine_with_colour(image, guess, prompt, iterations=5, sure=0.85)
    assert np.array_equal(kept, guess > 0.5)  # every pixel was sure: the head's mask, untouched
    decided = refine_with_colour(image, guess, prompt, iterations=5, sure=0.97)
    assert _iou(decided, truth == 1) >= 0.9  # nothing sure: colour grows the square to the ellipse
    coarse = refine_with_colour(image, guess, prompt, iterations=5, sure=0.97, side=96)
    assert not np.array_equal(coarse, decided) and _iou(coarse, truth == 1) >= 0.9  # a 96 px crop: blockier


def test_reseed_remakes_one_objects_mask_from_a_box_and_keeps_its_id_label_and_the_others(full_network):
    image, truth = _scene(5, [("ellipse", 90, 120, 45, 40), ("rectangle", 230, 110, 40, 45)])
    session = Session(full_network)
    session.set_mask(image, np.where(truth == 1, 1, 0).astype(np.uint16), labels={1: "cup"})
    session.add_objects(image, [_box(truth == 2)], labels=["box"])
    # The object has moved: its new place is given as a box on a later image.
    moved, moved_truth = _scene(5, [("ellipse", 150, 150, 45, 40), ("rectangle", 230, 110, 40, 45)])
    before = session.objects.label(2)
    result = session.reseed(moved, {1: _box(moved_truth == 1)})
    assert result.ids == [1]
    assert _iou(result.label_map == 1, moved_truth == 1) >= 0.8
    assert session.object_ids == [1, 2]
    assert session.objects.label(1) == "cup" and session.objects.label(2) == before
    labels = session.step(moved).label_map
    assert _iou(labels == 1, moved_truth == 1) >= 0.8
    assert _iou(labels == 2, moved_truth == 2) >= 0.8


@pytest.mark.parametrize(
    ("boxes", "error", "words"),
    [({7: (10, 10, 50, 50)}, UnknownObjectError, "not tracked: \\[7\\]"), ({}, InvalidPromptError, "no boxes")],
)
def test_reseed_refuses_unknown_ids_and_no_boxes_and_changes_nothing(fast_network, boxes, error, words):
    clip = make_clip(num_objects=2, num_frames=3, size=SIZE, seed=1)
    session = Session(fast_network)
    session.set_mask(clip.frames[0], clip.labels[0])
    session.step(clip.frames[1])
    before = _state(session)
    with pytest.raises(error, match=words):
        session.reseed(clip.frames[1], boxes)
    after = _state(session)
    assert after[:3] == before[:3] and np.array_equal(after[3], before[3])
