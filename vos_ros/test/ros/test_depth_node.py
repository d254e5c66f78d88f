"""vos_node with depth over real DDS: 3D positions, ~/objects_cloud and ~/markers from a synthetic
RGB-D scene with known geometry, and bad depth input. One node process serves the module; the tests
run in file order on the same static scene."""

import time

import cv2
import numpy as np
import pytest
from depth_scene import WALL_Z, Scene, depth_image
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from visualization_msgs.msg import Marker, MarkerArray

from vos_ros.ros.client import ANSWER_TIMEOUT_S, VosClient, launch_node
from vos_ros.ros.convert import mask_to_labels
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.stamps import make_header, stamp_to_ns

pytestmark = pytest.mark.ros  # starts vos_node processes and talks DDS

TOLERANCE_M = 0.02
FRAME_ID = "camera_optical"
EROSION, STRIDE = 3, 2
DEPTH_TOPIC, INFO_TOPIC = "/camera/aligned_depth", "/camera/color/camera_info"  # remapped: not the defaults


@pytest.fixture(scope="module")
def scene():
    return Scene(160, 120)


class DepthClient:
    """The harness client plus a depth and CameraInfo publisher and the node's 3D outputs by stamp."""

    def __init__(self, client: VosClient, scene: Scene):
        self.client, self.scene, self.view = client, scene, scene.render()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.depth_pub = client.node.create_publisher(Image, DEPTH_TOPIC, reliable)
        self.info_pub = client.node.create_publisher(CameraInfo, INFO_TOPIC, reliable)
        self.clouds = None
        self.markers: dict[int, MarkerArray] = {}
        client.node.create_subscription(MarkerArray, "/vos_node/markers", self._on_markers, reliable)

    def _on_markers(self, msg: MarkerArray) -> None:
        if msg.markers:  # keyed by the stamp of the markers' (shared) header; wait() polls for it
            self.markers[stamp_to_ns(msg.markers[0].header.stamp)] = msg

    def wait_inputs_matched(self) -> None:
        for pub in (self.depth_pub, self.info_pub):
            assert self.client.wait(lambda p=pub: p.get_subscription_count() > 0, 30.0), "node not subscribed"

    def subscribe_cloud(self) -> None:
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.clouds = self.client.subscribe("/vos_node/objects_cloud", PointCloud2, reliable)
        assert self.client.wait(lambda: self.clouds.subscription.get_publisher_count() > 0, 10.0)

    def send(
        self,
        encoding: str | None = "16UC1",
        info: CameraInfo | None = None,
        depth_offset_ns: int = 0,
        depth_msg: Image | None = None,
        attempts: int = 3,
    ) -> int:
        """Publish CameraInfo and depth (unless ``encoding`` is None), then the colour frame, all stamped
        now (depth shifted by ``depth_offset_ns``); waits for the labels and returns the stamp."""
        stamp = time.time_ns()
        for _ in range(attempts):
            self.info_pub.publish(info or self.scene.camera_info(make_header(stamp, FRAME_ID)))
            if encoding is not None:
                msg = depth_msg or depth_image(self.view.depth, encoding)
                msg.header = make_header(stamp + depth_offset_ns, FRAME_ID)
                self.depth_pub.publish(msg)
                time.sleep(0.05)  # let the depth sample arrive before the colour frame (they are separate topics)
            self.client.publish_frame(self.view.rgb, stamp, frame_id=FRAME_ID)
            if self.client.wait(lambda: stamp in self.client.labels, ANSWER_TIMEOUT_S / attempts):
                return stamp
        raise AssertionError(f"no labels for stamp {stamp}:\n{self.client.process.log_tail(40)}")

    def positions(self, stamp: int) -> dict[int, tuple[float, float, float]]:
        objects = self.client.tracked(stamp).objects
        return {o.id: (o.position.x, o.position.y, o.position.z) for o in objects}


@pytest.fixture(scope="module")
def node(tmp_path_factory, scene):
    with launch_node(
        [
            "-p",
            "config:=matching",
            "-p",
            "short_side:=128",
            "-p",
            "use_depth:=true",
            "-p",
            "depth_slop:=0.01",
            "-p",
            f"depth_erosion:={EROSION}",
            "-p",
            "min_valid_depths:=20",
            "-p",
            f"cloud_stride:={STRIDE}",
            "-p",
            "warn_throttle:=0.0",
            "-r",
            f"depth:={DEPTH_TOPIC}",
            "-r",
            f"camera_info:={INFO_TOPIC}",
        ],
        tmp_path_factory.mktemp("vos_node_depth") / "vos_node.log",
        domain_id=free_domain_id(),
        outputs=True,
    ) as client:
        depth = DepthClient(client, scene)
        depth.wait_inputs_matched()
        stamp = depth.send()
        response = client.set_initial_mask(depth.view.labels, stamp, labels=["box", "disc"])
        assert response.success, response.message
        yield depth


def log_has(node: DepthClient, text: str, timeout: float = 10.0) -> bool:
    return node.client.wait(lambda: text in node.client.process.log_tail(200), timeout)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_positions_are_the_object_centres(node, scene, encoding):
    stamp = node.send(encoding)
    labels = mask_to_labels(node.client.labels[stamp])
    assert set(np.unique(labels)) == {0, 1, 2}
    positions = node.positions(stamp)
    for patch in scene.patches:
        assert positions[patch.id] == pytest.approx(patch.centre, abs=TOLERANCE_M), (encoding, patch.id)


def test_cloud_holds_the_object_points_with_the_image_header(node, scene):
    node.subscribe_cloud()
    for _ in range(10):  # until the node has discovered the subscriber
        stamp = node.send("32FC1")
        if node.client.wait(lambda stamp=stamp: stamp in node.clouds, 2.0):
            break
    cloud = node.clouds[stamp]
    assert cloud.header.frame_id == "camera_optical" and stamp_to_ns(cloud.header.stamp) == stamp
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
        ("x", 0, PointField.FLOAT32),
        ("y", 4, PointField.FLOAT32),
        ("z", 8, PointField.FLOAT32),
        ("id", 12, PointField.UINT16),
    ]
    assert (cloud.height, cloud.point_step, cloud.row_step, cloud.is_dense) == (1, 16, 16 * cloud.width, True)

    labels = mask_to_labels(node.client.labels[stamp])
    kernel = np.ones((2 * EROSION + 1, 2 * EROSION + 1), np.uint8)
    expected = sum(
        np.count_nonzero(cv2.erode((labels == i).view(np.uint8), kernel)[::STRIDE, ::STRIDE]) for i in (1, 2)
    )
    assert cloud.width == expected > 0

    raw = np.frombuffer(bytes(cloud.data), np.uint8).reshape(cloud.width, 16)
    xyz, ids = raw[:, :12].copy().view("<f4"), raw[:, 12:14].copy().view("<u2")[:, 0]
    assert set(np.unique(ids)) == {1, 2}
    on_patch = np.zeros(len(ids), bool)
    for patch in scene.patches:
        x0, y0, z = patch.centre
        mine = ids == patch.id
        dx, dy = (xyz[mine, 0] - x0) / patch.half[0], (xyz[mine, 1] - y0) / patch.half[1]
        inside = dx**2 + dy**2 <= 1.05 if patch.disc else (np.abs(dx) <= 1.05) & (np.abs(dy) <= 1.05)
        on_patch[mine] = np.isclose(xyz[mine, 2], z, atol=1e-4) & inside
    on_wall = np.isclose(xyz[:, 2], WALL_Z, atol=1e-4)
    assert (on_patch | on_wall).all(), "every point lies on a known surface"
    assert on_patch.mean() > 0.95, "and nearly all on the surface of their own object"


def test_markers_sit_at_the_objects_and_go_when_an_object_is_removed(node, scene):
    stamp = node.send("32FC1")
    assert node.client.wait(lambda: stamp in node.markers, ANSWER_TIMEOUT_S)
    markers = node.markers[stamp].markers
    assert [(m.id, m.action, m.text) for m in markers] == [(1, Marker.ADD, "1: box"), (2, Marker.ADD, "2: disc")]
    for marker, patch in zip(markers, scene.patches):
        position = (marker.pose.position.x, marker.pose.position.y, marker.pose.position.z)
        assert position == pytest.approx(patch.centre, abs=TOLERANCE_M)
        assert marker.header.frame_id == "camera_optical"

    assert node.client.remove_objects([2]).success
    stamp = node.send("32FC1")
    assert node.client.wait(lambda: stamp in node.markers, ANSWER_TIMEOUT_S)
    assert [(m.id, m.action) for m in node.markers[stamp].markers] == [(1, Marker.ADD), (2, Marker.DELETE)]
    response = node.client.set_initial_mask(np.where(node.view.labels == 2, 2, 0), stamp, labels=["disc"], append=True)
    assert response.success, response.message


def test_missing_or_distant_depth_gives_nan_while_labels_arrive(node):
    stamp = node.send(encoding=None)
    assert set(np.unique(mask_to_labels(node.client.labels[stamp]))) == {0, 1, 2}
    assert all(np.isnan(p).all() for p in node.positions(stamp).values())
    stamp = node.send("16UC1", depth_offset_ns=500_000_000)
    assert all(np.isnan(p).all() for p in node.positions(stamp).values())
    assert log_has(node, "no depth image within depth_slop=0.01 s")


def test_zero_focal_length_camera_info_is_refused_with_a_warning(node, scene):
    """The CameraInfo subscription is best effort and the executor may serve a colour frame before
    an info that arrived with it: the bad frame is sent once the refusal is logged, and good frames
    are resent (for at most 10 s) until the good info is in use."""
    bad = scene.camera_info(focal_scale=0.0)
    node.info_pub.publish(bad)
    assert log_has(node, "no usable focal length"), "the uncalibrated CameraInfo was not refused"
    stamp = node.send("16UC1", info=bad)
    assert set(np.unique(mask_to_labels(node.client.labels[stamp]))) == {0, 1, 2}
    assert all(np.isnan(p).all() for p in node.positions(stamp).values())
    deadline = time.monotonic() + 10.0
    position = node.positions(node.send("16UC1"))[1]
    while np.isnan(position).any() and time.monotonic() < deadline:
        position = node.positions(node.send("16UC1"))[1]
    assert position == pytest.approx(scene.patches[0].centre, abs=TOLERANCE_M), "a good one is taken"


def test_unknown_encodings_and_unregistered_sizes_are_named(node, scene):
    bad = depth_image(node.view.depth, "16UC1")
    bad.encoding = "mono16"
    stamp = node.send("16UC1", depth_msg=bad)
    assert all(np.isnan(p).all() for p in node.positions(stamp).values())
    assert log_has(node, "unsupported depth encoding 'mono16'")
    stamp = node.send("32FC1", depth_msg=depth_image(np.full((90, 160), 2.0, np.float32), "32FC1"))
    assert all(np.isnan(p).all() for p in node.positions(stamp).values())
    assert log_has(node, "aspect ratios differ")
    assert node.client.process.exit_code() is None
