"""What vos_node does with detector boxes on ~/prompts (plan_prompts) and how requests are read."""

import pytest
from sensor_msgs.msg import RegionOfInterest

from vos_ros.ros.prompts import PromptError, box_iou, grouped_points, plan_prompts, roi_boxes
from vos_ros_interfaces.msg import PromptPoint

TRACKED = {1: (10.0, 10.0, 50.0, 50.0), 2: (100.0, 10.0, 140.0, 60.0)}


def plan(boxes, scores=None, policy="add_new", last_scores=None, room=10, match=0.5):
    scores = scores or [1.0] * len(boxes)
    return plan_prompts(boxes, scores, TRACKED, last_scores or {1: 0.9, 2: 0.9}, policy, match, 0.3, room)


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_add_new_adds_only_boxes_that_match_no_tracked_object():
    boxes = [(12.0, 11.0, 52.0, 49.0), (200.0, 100.0, 260.0, 160.0), (101.0, 12.0, 139.0, 61.0)]
    assert plan(boxes) == ([1], {}, 0)


def test_the_same_object_twice_in_one_message_is_added_once_the_higher_score_first():
    boxes = [(200.0, 100.0, 260.0, 160.0), (202.0, 101.0, 261.0, 158.0)]
    assert plan(boxes, scores=[0.4, 0.8]) == ([1], {}, 0)


def test_refresh_reseeds_a_matched_object_only_when_its_score_is_low():
    boxes = [(12.0, 11.0, 52.0, 49.0), (101.0, 12.0, 139.0, 61.0)]
    assert plan(boxes, policy="refresh", last_scores={1: 0.1, 2: 0.9}) == ([], {1: boxes[0]}, 0)
    assert plan(boxes, policy="add_new", last_scores={1: 0.1, 2: 0.9}) == ([], {}, 0)


def test_max_objects_holds():
    boxes = [(200.0, 100.0, 230.0, 130.0), (240.0, 100.0, 270.0, 130.0), (280.0, 100.0, 310.0, 130.0)]
    assert plan(boxes, scores=[0.5, 0.9, 0.7], room=2) == ([1, 2], {}, 1)


def test_requests_are_read_and_bad_ones_refused():
    rois = [RegionOfInterest(x_offset=5, y_offset=6, width=10, height=20)]
    assert roi_boxes(rois) == [(5.0, 6.0, 15.0, 26.0)]
    with pytest.raises(PromptError, match="box 0 is empty"):
        roi_boxes([RegionOfInterest(x_offset=5, y_offset=6, width=0, height=20)])
    points = [PromptPoint(object_index=1, x=3.0, y=4.0, positive=False), PromptPoint(object_index=0, x=1.0, y=2.0)]
    assert grouped_points(points, 2) == ([[(1.0, 2.0)], [(3.0, 4.0)]], [[False], [False]])
    with pytest.raises(PromptError, match="names no box"):
        grouped_points(points, 1)
