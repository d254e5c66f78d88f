"""vos_node across processes: ~/add_objects (boxes, clicks), the ~/prompts detector topic, bad prompt input,
and the vos-ros-prompt command. One node process (config full, whose backbone the prompt head shares)
serves the module; the tests run in file order on one synthetic clip."""

import os
import subprocess

import cv2
import numpy as np
import pytest

from vos_ros.ros.client import VosClient, launch_node
from vos_ros.ros.convert import mask_to_labels
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.stamps import format_stamp, stamp_to_ns
from vos_ros.synthetic import make_clip
from vos_ros_interfaces.msg import PromptPoint

pytestmark = pytest.mark.ros  # starts vos_node processes and talks DDS

HEIGHT, WIDTH = 240, 320
MAX_OBJECTS = 4
MIN_IOU = 0.5


class Stream:
    def __init__(self):
        self.clip = make_clip(num_objects=3, num_frames=200, size=(HEIGHT, WIDTH), seed=2, speed=1.5)
        self.index = -1

    def next(self):
        self.index += 1
        return self.clip.frames[self.index], self.clip.labels[self.index]


def iou(labels, truth, object_id):
    a, b = labels == object_id, truth == object_id
    return float((a & b).sum() / max(1, (a | b).sum()))


def box_of(mask, grow=0.05):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    w, h = cols[-1] + 1 - cols[0], rows[-1] + 1 - rows[0]
    return (
        max(0.0, cols[0] - grow * w),
        max(0.0, rows[0] - grow * h),
        min(WIDTH, cols[-1] + 1 + grow * w),
        min(HEIGHT, rows[-1] + 1 + grow * h),
    )


@pytest.fixture(scope="module")
def stream():
    return Stream()


@pytest.fixture(scope="module")
def domain():
    return free_domain_id()


@pytest.fixture(scope="module")
def node(tmp_path_factory, domain):
    with launch_node(
        ["-p", "short_side:=240", "-p", f"max_objects:={MAX_OBJECTS}", "-p", "use_depth:=false"],
        tmp_path_factory.mktemp("vos_node_prompts") / "vos_node.log",
        domain_id=domain,
        outputs=True,
    ) as client:
        yield client


def send(node: VosClient, stream: Stream):
    rgb, truth = stream.next()
    msg, header = node.send_frame(rgb)
    return mask_to_labels(msg), truth, stamp_to_ns(header.stamp)


def tracked_ids(node: VosClient, stream: Stream) -> list[int]:
    _, _, stamp = send(node, stream)
    return [o.id for o in node.tracked(stamp).objects]


def test_boxes_for_two_objects_are_tracked(node, stream):
    _, truth, stamp = send(node, stream)
    send(node, stream)  # a newer frame: the request must apply to the stamped one, not the newest
    boxes = [box_of(truth == 1), box_of(truth == 2)]
    response = node.add_objects(boxes, labels=["disc", "box"], append=False, stamp_ns=stamp)
    assert response.success, response.message
    assert list(response.object_ids) == [1, 2]
    assert stamp_to_ns(response.mask.header.stamp) == stamp
    mask = mask_to_labels(response.mask)
    assert mask.shape == (HEIGHT, WIDTH)
    for k in (1, 2):
        assert iou(mask, truth, k) >= 0.7, k
    ious = {1: [], 2: []}
    for _ in range(6):
        labels, truth, stamp = send(node, stream)
        for k in ious:
            ious[k].append(iou(labels, truth, k))
    assert [(o.id, o.label) for o in node.tracked(stamp).objects] == [(1, "disc"), (2, "box")]
    for k, values in ious.items():
        assert np.mean(values) >= MIN_IOU, (k, values)


def test_a_negative_click_is_accepted_with_its_box(node, stream):
    _, truth, stamp = send(node, stream)
    x0, y0, _, _ = box_of(truth == 1)
    point = PromptPoint(object_index=0, x=float(x0 + 1), y=float(y0 + 1), positive=False)
    response = node.add_objects(
        [box_of(truth == 1)], points=[(0, point.x, point.y, False)], labels=["disc"], append=False, stamp_ns=stamp
    )
    assert response.success, response.message
    assert list(response.object_ids) == [1]
    node.add_objects([box_of(truth == 2)], labels=["box"], stamp_ns=stamp)
    assert tracked_ids(node, stream) == [1, 2]


BAD_REQUESTS = [
    ("empty box", {"boxes": [(10, 10, 10, 60)]}, "empty"),
    ("box outside", {"boxes": [(WIDTH + 50, 10, WIDTH + 90, 60)]}, "outside"),
    ("point naming no box", {"boxes": [(10, 10, 60, 60)], "points": [(1, 20, 20, True)]}, "names no box"),
    ("point outside", {"boxes": [(10, 10, 60, 60)], "points": [(0, 20, HEIGHT + 40, True)]}, "outside"),
    ("too many", {"boxes": [(10, 10, 60, 60), (70, 10, 120, 60), (130, 10, 180, 60)]}, "limit"),
    ("no boxes", {"boxes": []}, "no boxes"),
    ("unknown stamp", {"boxes": [(10, 10, 60, 60)], "stamp_ns": 12_345_000_000}, "no recent frame"),
    ("labels", {"boxes": [(10, 10, 60, 60)], "labels": ["a", "b"]}, "labels"),
]


def test_bad_prompts_are_refused_and_tracking_goes_on(node, stream):
    _, _, stamp = send(node, stream)
    for name, request, words in BAD_REQUESTS:
        request = {"stamp_ns": stamp, **request}
        response = node.add_objects(**request)
        assert not response.success, name
        assert words in response.message, (name, response.message)
        assert list(response.object_ids) == []
    assert tracked_ids(node, stream) == [1, 2]


def test_detector_prompts_add_an_object_once(node, stream):
    # objects 1 and 2 from their true masks, so that the test is about the policy, not the head's masks
    _, truth, stamp = send(node, stream)
    response = node.set_initial_mask(np.where(truth == 3, 0, truth), stamp, labels=["disc", "box"])
    assert response.success, response.message
    added_at = None
    for index in range(12):
        labels, truth, stamp = send(node, stream)
        boxes = [box_of(truth == k) for k in (1, 2, 3)]
        node.publish_prompts(boxes, stamp, labels=["disc", "box", "thing"], scores=[0.9, 0.8, 0.7])
        ids = [o.id for o in node.tracked(stamp).objects]
        if added_at is None and 3 in ids:
            added_at = index
    assert added_at is not None, "the prompt for the untracked object never added it"
    objects = node.tracked(stamp).objects
    assert [(o.id, o.label) for o in objects] == [(1, "disc"), (2, "box"), (3, "thing")]
    labels, truth, _ = send(node, stream)
    assert iou(labels, truth, 3) >= MIN_IOU


def test_prompt_policy_is_a_live_checked_parameter(node, stream, domain):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = node.node.create_client(SetParameters, node.topic("set_parameters"))
    assert node.wait(client.service_is_ready, 20)
    bad = node.call(
        client, SetParameters.Request(parameters=[Parameter("prompt_policy", value="sometimes").to_parameter_msg()])
    )
    assert not bad.results[0].successful and "add_new" in bad.results[0].reason
    good = node.call(
        client, SetParameters.Request(parameters=[Parameter("prompt_policy", value="refresh").to_parameter_msg()])
    )
    assert good.results[0].successful


def run_prompt(domain, *args):
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    return subprocess.run(
        ["vos-ros-prompt", "--node", "/vos_node", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_vos_ros_prompt_with_a_box_and_with_a_mask_file(node, stream, domain, tmp_path):
    _, truth, stamp = send(node, stream)
    x0, y0, x1, y1 = box_of(truth == 1)
    done = run_prompt(
        domain, "--box", f"{x0:.1f},{y0:.1f},{x1:.1f},{y1:.1f}:disc", "--replace", "--stamp", format_stamp(stamp)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ids 1 "), done.stdout
    labels, truth, stamp = send(node, stream)
    assert [(o.id, o.label) for o in node.tracked(stamp).objects] == [(1, "disc")]
    assert iou(labels, truth, 1) >= MIN_IOU

    refused = run_prompt(domain, "--box", "10,10,10,50")
    assert refused.returncode == 1 and refused.stdout.startswith("refused:") and "empty" in refused.stdout

    _, truth, stamp = send(node, stream)
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), np.where(truth == 3, 7, 0).astype(np.uint8))
    done = run_prompt(domain, "--mask", str(path), "--label", "thing", "--stamp", format_stamp(stamp))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ids 7 "), done.stdout
    assert tracked_ids(node, stream) == [1, 7]
