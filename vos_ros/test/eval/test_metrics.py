"""Known-answer tests of the DAVIS metrics (every expected value is worked out by hand)."""

import numpy as np
import pytest

from vos_ros.eval.metrics import (
    SequenceEvaluator,
    boundary_map,
    boundary_tolerance,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    disk,
    evaluate_sequence,
    summarize,
)

H, W = 64, 96  # diagonal 115.4 px -> tolerance ceil(0.92) = 1 px


def square(top, left, size, shape=(H, W)):
    mask = np.zeros(shape, dtype=np.uint8)
    mask[top : top + size, left : left + size] = 1
    return mask


def test_tolerance_is_ceil_of_diagonal_fraction():
    assert boundary_tolerance((480, 854)) == 8  # 0.008 * 979.6 = 7.84
    assert boundary_tolerance((H, W)) == 1
    assert boundary_tolerance((480, 854), bound_th=3) == 3


def test_disk_kernel():
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    kernel = disk(2)
    assert kernel.shape == (5, 5)
    assert kernel[0].tolist() == [0, 0, 1, 0, 0]
    assert kernel[1].tolist() == [0, 1, 1, 1, 0]
    assert kernel[2].tolist() == [1, 1, 1, 1, 1]


def test_boundary_of_a_square_is_the_ring_offset_towards_the_origin():
    # A 3x3 square at rows/cols 2..4: the boundary is the outline of rows/cols 1..4.
    bmap = boundary_map(square(2, 2, 3, shape=(7, 7)))
    expected = np.zeros((7, 7), dtype=bool)
    expected[1, 1:5] = expected[4, 1:5] = True
    expected[1:5, 1] = expected[1:5, 4] = True
    np.testing.assert_array_equal(bmap, expected)
    assert bmap.sum() == 12


def test_mask_edges_on_the_image_border_are_not_boundary():
    assert not boundary_map(np.ones((5, 6), np.uint8)).any()
    half = np.zeros((5, 6), np.uint8)
    half[:, 3:] = 1  # only the vertical edge inside the image is a boundary
    expected = np.zeros((5, 6), dtype=bool)
    expected[:, 2] = True
    np.testing.assert_array_equal(boundary_map(half), expected)


def test_identical_masks():
    mask = square(10, 10, 10)
    assert db_eval_iou(mask, mask) == 1.0
    assert db_eval_boundary(mask, mask) == 1.0


def test_both_empty_score_one():
    empty = np.zeros((H, W), np.uint8)
    assert db_eval_iou(empty, empty) == 1.0
    assert db_eval_boundary(empty, empty) == 1.0


@pytest.mark.parametrize("flip", [False, True])
def test_one_empty_scores_zero(flip):
    mask, empty = square(10, 10, 10), np.zeros((H, W), np.uint8)
    gt, pred = (empty, mask) if flip else (mask, empty)
    assert db_eval_iou(gt, pred) == 0.0
    assert db_eval_boundary(gt, pred) == 0.0


def test_one_pixel_shift_is_within_boundary_tolerance():
    gt, pred = square(10, 10, 10), square(10, 11, 10)
    assert db_eval_iou(gt, pred) == pytest.approx(90 / 110)  # 10x9 overlap, 10x11 union
    assert db_eval_boundary(gt, pred) == 1.0


def test_three_pixel_shift_matches_half_of_each_boundary():
    # Boundary rings: 40 px each (rows 9..19 x cols 9..19, and cols 12..22). With a 1 px
    # tolerance, 20 of the shifted ring's pixels lie next to the other ring (top/bottom rows
    # up to x=20, the left column's two ends): P = R = 0.5.
    gt, pred = square(10, 10, 10), square(10, 13, 10)
    assert db_eval_iou(gt, pred) == pytest.approx(70 / 130)
    assert db_eval_boundary(gt, pred) == pytest.approx(0.5)


def test_shift_beyond_tolerance_scores_zero():
    gt, pred = square(10, 10, 10), square(10, 40, 10)
    assert db_eval_iou(gt, pred) == 0.0
    assert db_eval_boundary(gt, pred) == 0.0


def test_wider_tolerance_accepts_the_shift():
    gt, pred = square(10, 10, 10), square(10, 13, 10)
    assert db_eval_boundary(gt, pred, bound_th=3) == 1.0


def test_known_iou_of_half_overlapping_rectangles():
    gt = np.zeros((H, W), np.uint8)
    pred = np.zeros((H, W), np.uint8)
    gt[10:20, 10:30] = 1
    pred[10:20, 20:40] = 1  # overlaps gt's right half: 100 px of a 300 px union
    assert db_eval_iou(gt, pred) == pytest.approx(1 / 3)
    assert db_eval_iou(gt * 255, pred.astype(bool)) == pytest.approx(1 / 3)


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="differ in size"):
        db_eval_iou(np.zeros((4, 5)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="2-D"):
        db_eval_boundary(np.zeros((4, 5, 3)), np.zeros((4, 5, 3)))


def test_statistics_mean_recall_decay():
    values = np.arange(9) / 8  # decay bins: [0, 1, 2] and [6, 7, 8] (in eighths)
    mean, recall, decay = db_statistics(values)
    assert mean == pytest.approx(0.5)
    assert recall == pytest.approx(4 / 9)  # 5/8 .. 8/8 are above 0.5
    assert decay == pytest.approx(1 / 8 - 7 / 8)


def test_statistics_reject_empty():
    with pytest.raises(ValueError):
        db_statistics([])


def clip_of(masks):
    return [m.astype(np.uint16) for m in masks]


def test_first_and_last_frame_are_excluded():
    gt = clip_of([square(10, 10, 10)] * 5)
    empty = np.zeros((H, W), np.uint16)
    pred = [empty] + gt[1:4] + [empty]
    scores = evaluate_sequence(gt, pred)
    assert scores.object_ids == (1,)
    assert scores.n_frames == 3
    np.testing.assert_array_equal(scores.j, [[1.0, 1.0, 1.0]])
    all_frames = evaluate_sequence(gt, pred, skip_first_last=False)
    assert all_frames.j.mean() == pytest.approx(3 / 5)
    assert all_frames.f.mean() == pytest.approx(3 / 5)


def test_objects_are_compared_by_id():
    gt = np.zeros((H, W), np.uint16)
    gt[10:20, 10:20] = 1
    gt[30:40, 50:60] = 2
    swapped = np.where(gt == 1, 2, np.where(gt == 2, 1, 0)).astype(np.uint16)
    evaluator = SequenceEvaluator([1, 2])
    for pred in (gt, gt, swapped, gt):
        evaluator.add(gt, pred)
    scores = evaluator.scores()
    np.testing.assert_array_equal(scores.j, [[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(scores.f, [[1.0, 0.0], [1.0, 0.0]])


def test_sequence_needs_three_frames():
    gt = clip_of([square(10, 10, 10)] * 2)
    with pytest.raises(ValueError, match="at least 3 frames"):
        evaluate_sequence(gt, gt)
    with pytest.raises(ValueError, match="predictions"):
        evaluate_sequence(gt, gt[:1])


def test_bad_object_ids_are_rejected():
    with pytest.raises(ValueError):
        SequenceEvaluator([])
    with pytest.raises(ValueError):
        SequenceEvaluator([1, 1])
    with pytest.raises(ValueError):
        SequenceEvaluator([0])


def test_summary_averages_over_objects_not_sequences():
    one = square(10, 10, 10).astype(np.uint16)
    three = np.zeros((H, W), np.uint16)
    three[5:15, 5:15] = 1
    three[5:15, 40:50] = 2
    three[40:50, 40:50] = 3
    lost_third = np.where(three == 3, 0, three).astype(np.uint16)
    scores = {
        "single": evaluate_sequence([one] * 4, [one] * 4),
        "triple": evaluate_sequence([three] * 4, [three] + [lost_third] * 2 + [three]),
    }
    summary = summarize(scores)
    assert summary["J"] == pytest.approx(3 / 4)  # objects 1, 1, 1, 0; per sequence would give 5/6
    assert summary["F"] == pytest.approx(3 / 4)
    assert summary["J&F"] == pytest.approx(3 / 4)
    assert summary["J_recall"] == pytest.approx(3 / 4)
    assert summary["n_objects"] == 4
    assert summary["n_sequences"] == 2
    triple = summary["sequences"]["triple"]
    assert triple["J"] == pytest.approx(2 / 3)
    assert triple["n_frames_evaluated"] == 2
    assert triple["objects"]["3"]["J"] == 0.0
    assert triple["objects"]["1"]["F"] == 1.0


def test_decay_of_an_object_lost_halfway():
    gt = [square(10, 10, 10).astype(np.uint16)] * 11
    empty = np.zeros((H, W), np.uint16)
    pred = gt[:5] + [empty] * 6  # evaluated frames 1..9: J = 1,1,1,1,0,0,0,0,0
    summary = summarize({"seq": evaluate_sequence(gt, pred)})
    assert summary["J"] == pytest.approx(4 / 9)
    assert summary["J_recall"] == pytest.approx(4 / 9)
    assert summary["J_decay"] == pytest.approx(1.0)
    assert summary["F_decay"] == pytest.approx(1.0)
