"""Two cameras in one vos_node process over real DDS (``cameras:=[front,rear]``), each with its own
synthetic clip and objects: labels and tracked objects come out on the right camera's topics with that
camera's stamps; removing an object on one camera leaves the other untouched; a camera that sends no
frames does not hold the other back. One node process serves the module; the tests run in file order."""

import numpy as np
import pytest

from vos_ros.ros.client import VosClient, launch_node
from vos_ros.ros.convert import mask_to_labels
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.stamps import stamp_to_ns
from vos_ros.synthetic import make_clip

pytestmark = pytest.mark.ros  # starts a vos_node process and talks DDS

HEIGHT, WIDTH = 180, 240
SHORT_SIDE = 192
MIN_IOU = 0.5
NAMES = {"front": ["disc", "box", "ring"], "rear": ["cup", "ball"]}


class Camera:
    """One camera's client and clip; frames are taken in order, once each."""

    def __init__(self, client: VosClient, objects: int, seed: int):
        self.client = client
        self.clip = make_clip(num_objects=objects, num_frames=60, size=(HEIGHT, WIDTH), seed=seed, speed=1.5)
        self.index = -1
        self.sent: list[int] = []

    def send(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The next frame to the node and its labels back: (labels, truth, stamp)."""
        self.index += 1
        msg, header = self.client.send_frame(self.clip.frames[self.index])
        stamp = stamp_to_ns(header.stamp)
        self.sent.append(stamp)
        assert msg.header.stamp == header.stamp and (msg.height, msg.width) == (HEIGHT, WIDTH)
        return mask_to_labels(msg), self.clip.labels[self.index], stamp


def iou(labels: np.ndarray, truth: np.ndarray, object_id: int) -> float:
    a, b = labels == object_id, truth == object_id
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module")
def cameras(tmp_path_factory):
    domain = free_domain_id()
    args = ["-p", "cameras:=[front,rear]", "-p", f"short_side:={SHORT_SIDE}", "-p", "diagnostics_period:=0.2"]
    log = tmp_path_factory.mktemp("vos_node_cameras") / "vos_node.log"
    with launch_node(args, log, domain_id=domain, outputs=True, camera="front", image_topic="/front/image") as front:
        rear = VosClient(
            domain_id=domain, process=front.process, camera="rear", image_topic="/rear/image", outputs=True
        )
        try:
            rear.wait_ready()
            yield {"front": Camera(front, objects=3, seed=1), "rear": Camera(rear, objects=2, seed=5)}
        finally:
            rear.close()


def test_each_camera_tracks_its_own_clip_on_its_own_topics(cameras):
    for name, camera in cameras.items():
        labels, truth, stamp = camera.send()
        assert not labels.any(), "before a mask every pixel is background"
        response = camera.client.set_initial_mask(truth, stamp, labels=NAMES[name])
        assert response.success, response.message
        assert list(response.object_ids) == list(range(1, len(NAMES[name]) + 1))
    ious = {name: [] for name in cameras}
    for _ in range(5):
        for name, camera in cameras.items():
            labels, truth, stamp = camera.send()
            objects = camera.client.tracked(stamp)
            assert objects.header.stamp == camera.client.labels[stamp].header.stamp
            assert [(o.id, o.label) for o in objects.objects] == list(enumerate(NAMES[name], start=1))
            assert set(np.unique(labels)) <= set(range(len(NAMES[name]) + 1))
            ious[name] += [iou(labels, truth, k) for k in range(1, len(NAMES[name]) + 1)]
    for name, values in ious.items():
        assert np.mean(values) >= MIN_IOU, (name, values)
    front, rear = cameras["front"], cameras["rear"]
    for camera, other in ((front, rear), (rear, front)):
        answered = camera.client.snapshot(camera.client.labels.received_ns)
        assert set(camera.sent) <= set(answered), "every frame of a camera is answered on its own topic"
        assert not set(other.sent) & set(answered), "no frame of the other camera comes out on this camera's topic"
        objects = camera.client.snapshot(camera.client.objects.received_ns)
        assert not set(other.sent) & set(objects)


def test_removing_an_object_on_one_camera_leaves_the_other_untouched(cameras):
    front, rear = cameras["front"], cameras["rear"]
    response = front.client.remove_objects([2])
    assert response.success, response.message
    for _ in range(3):
        labels, _, stamp = front.send()
        assert [o.id for o in front.client.tracked(stamp).objects] == [1, 3]
        assert not (labels == 2).any()
        labels, _, stamp = rear.send()
        objects = rear.client.tracked(stamp).objects
        assert [(o.id, o.label) for o in objects] == [(1, "cup"), (2, "ball")]
        assert objects[1].area == (labels == 2).sum() > 0, "the rear camera's object 2 is still segmented"
    refused = rear.client.remove_objects([3])
    assert not refused.success and "not tracked" in refused.message, "the rear camera never had object 3"


def test_a_camera_without_frames_does_not_delay_the_other(cameras):
    front, rear = cameras["front"], cameras["rear"]
    before = front.client.latest_diagnostics()
    for _ in range(6):  # the rear camera sends nothing meanwhile: each front frame is answered
        _, _, stamp = front.send()
        assert [o.id for o in front.client.tracked(stamp).objects] == [1, 3]
    after = front.client.latest_diagnostics()
    # (a status may be taken between the last labels going out and that frame being counted: 5, not 6)
    assert int(after["front/frames_processed"]) >= int(before["front/frames_processed"]) + 5
    assert after["rear/frames_processed"] == before["rear/frames_processed"]
    assert after["cameras"] == "front,rear"
    _, _, stamp = rear.send()  # the rear camera comes back where it was
    assert [o.id for o in rear.client.tracked(stamp).objects] == [1, 2]


def test_each_camera_has_its_own_outputs_and_services(cameras):
    client = cameras["front"].client
    for camera in ("front", "rear"):
        for topic in ("labels", "tracked_objects", "overlay", "overlay/compressed", "objects_cloud", "markers"):
            publishers = client.node.get_publishers_info_by_topic(f"/vos_node/{camera}/{topic}")
            assert [p.node_name for p in publishers] == ["vos_node"], (camera, topic)
        for topic in ("image", "depth", "camera_info"):
            subscribers = client.node.get_subscriptions_info_by_topic(f"/{camera}/{topic}")
            assert [s.node_name for s in subscribers] == ["vos_node"], (camera, topic)
    assert not client.node.get_publishers_info_by_topic("/vos_node/labels"), "no unnamed camera beside named ones"
