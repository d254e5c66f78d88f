"""Depth decoding, intrinsics, object positions and points, stamp pairing and the 3D messages, on a
synthetic RGB-D scene with known geometry (no ROS graph)."""

import cv2
import numpy as np
import pytest
from depth_scene import Scene, depth_image
from sensor_msgs.msg import CameraInfo, Image, PointField
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from vos_ros.ros.depth import (
    DepthError,
    Intrinsics,
    depth_intrinsics,
    depth_to_metres,
    intrinsics_from_camera_info,
    labels_at,
    locate_objects,
)
from vos_ros.ros.depth_fusion import DepthFusion, Located
from vos_ros.ros.spatial_messages import ObjectMarkers, objects_cloud, set_positions
from vos_ros.ros.stamp_pairing import StampBuffer
from vos_ros_interfaces.msg import TrackedObject, TrackedObjectArray

TOLERANCE_M = 0.02


@pytest.fixture(scope="module")
def scene():
    return Scene()


def located(scene, encoding, depth_size=None, erosion=2, min_valid=10, stride=None):
    view = scene.render()
    depth_view = scene.render(*depth_size) if depth_size else view
    depth = depth_to_metres(depth_image(depth_view.depth, encoding))
    height, width = depth.shape
    intrinsics = depth_intrinsics(
        intrinsics_from_camera_info(scene.camera_info()), (scene.width, scene.height), (width, height)
    )
    labels = labels_at(view.labels, width, height)
    return locate_objects(depth, labels, intrinsics, [p.id for p in scene.patches], erosion, min_valid, stride)


# depth images --------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
@pytest.mark.parametrize("big_endian", [False, True])
def test_depth_to_metres_decodes_units_padding_and_byte_order(encoding, big_endian):
    metres = np.array([[0.5, 1.234, np.nan], [2.0, 65.0, 0.001]], np.float32)
    msg = depth_image(metres, encoding, big_endian=big_endian, pad=6)
    out = depth_to_metres(msg)
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_allclose(out[np.isfinite(metres)], metres[np.isfinite(metres)], atol=5e-4)
    assert np.isnan(out[0, 2])


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_zero_and_nan_depth_mean_no_reading(encoding):
    metres = np.array([[0.0, 1.0], [np.nan, -1.0 if encoding == "32FC1" else 2.0]], np.float32)
    out = depth_to_metres(depth_image(metres, encoding))
    assert np.isnan(out[0, 0]) and np.isnan(out[1, 0]) and out[0, 1] == pytest.approx(1.0)
    if encoding == "32FC1":
        assert np.isnan(out[1, 1]), "a negative depth is no reading"


def test_other_encodings_and_broken_sizes_are_refused_by_name():
    msg = depth_image(np.ones((2, 2), np.float32), "16UC1")
    msg.encoding = "mono16"
    with pytest.raises(DepthError, match=r"unsupported depth encoding 'mono16'.*16UC1 or 32FC1"):
        depth_to_metres(msg)
    msg = depth_image(np.ones((2, 2), np.float32), "32FC1")
    msg.data = msg.data[:-1]
    with pytest.raises(DepthError, match="holds 15 bytes"):
        depth_to_metres(msg)
    msg = depth_image(np.ones((2, 2), np.float32), "32FC1")
    msg.step = 4
    with pytest.raises(DepthError, match="smaller than one row"):
        depth_to_metres(msg)


# intrinsics ----------------------------------------------------------------------------------------


def test_intrinsics_come_from_k(scene):
    intrinsics = intrinsics_from_camera_info(scene.camera_info())
    assert intrinsics == Intrinsics(scene.fx, scene.fy, scene.cx, scene.cy, scene.width, scene.height)


@pytest.mark.parametrize(
    "k", [[0.0] * 9, [100.0, 0, 50, 0, 0.0, 40, 0, 0, 1], [float("nan"), 0, 50, 0, 100, 40, 0, 0, 1]]
)
def test_camera_info_without_a_focal_length_is_refused(k):
    with pytest.raises(DepthError, match=r"focal length|non-finite"):
        intrinsics_from_camera_info(CameraInfo(width=100, height=80, k=k))


def test_intrinsics_scale_to_a_smaller_depth_image_so_that_points_project_consistently(scene):
    colour = intrinsics_from_camera_info(scene.camera_info())
    half = depth_intrinsics(colour, (160, 120), (80, 60))
    assert (half.width, half.height, half.fx, half.fy) == (80, 60, colour.fx / 2, colour.fy / 2)
    point = np.array([0.3, -0.2, 1.5])
    u_colour = colour.fx * point[0] / point[2] + colour.cx
    u_half = half.fx * point[0] / point[2] + half.cx
    assert (u_half + 0.5) * 2 == pytest.approx(u_colour + 0.5), "pixel edges scale with the image"
    assert depth_intrinsics(colour, (160, 120), (160, 120)) == colour


def test_camera_info_without_size_describes_the_colour_image():
    info = CameraInfo(k=[200.0, 0, 99.5, 0, 200.0, 74.5, 0, 0, 1])
    scaled = depth_intrinsics(intrinsics_from_camera_info(info), (200, 150), (400, 300))
    assert (scaled.fx, scaled.cx, scaled.cy) == (400.0, 199.5, 149.5)


def test_depth_of_another_aspect_ratio_is_refused(scene):
    colour = intrinsics_from_camera_info(scene.camera_info())
    with pytest.raises(DepthError, match="depth image is 160x90 but the colour image is 160x120: aspect ratios differ"):
        depth_intrinsics(colour, (160, 120), (160, 90))
    with pytest.raises(DepthError, match="aspect ratios differ"):
        labels_at(np.zeros((120, 160), np.uint16), 160, 90)


def test_labels_at_picks_the_colour_pixel_under_each_depth_pixel_centre():
    labels = np.arange(16, dtype=np.uint16).reshape(4, 4)
    np.testing.assert_array_equal(labels_at(labels, 2, 2), [[5, 7], [13, 15]])
    np.testing.assert_array_equal(labels_at(labels[:2, :2], 4, 4), np.repeat(np.repeat(labels[:2, :2], 2, 0), 2, 1))


# positions and points ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
@pytest.mark.parametrize("depth_size", [None, (80, 60), (320, 240)])
def test_positions_are_the_patch_centres(scene, encoding, depth_size):
    geometry = located(scene, encoding, depth_size)
    for patch in scene.patches:
        assert geometry.positions[patch.id] == pytest.approx(patch.centre, abs=TOLERANCE_M), (patch.id, depth_size)


def test_position_is_unknown_without_enough_valid_depths(scene):
    view = scene.render()
    depth = view.depth.copy()
    depth[view.labels == 1] = np.nan
    depth[np.flatnonzero(view.labels == 1)[:5] // scene.width, np.flatnonzero(view.labels == 1)[:5] % scene.width] = 1.2
    intrinsics = intrinsics_from_camera_info(scene.camera_info())
    geometry = locate_objects(depth, view.labels, intrinsics, [1, 2, 9], erosion=0, min_valid=10, cloud_stride=None)
    assert geometry.positions[1] is None, "5 valid depths are fewer than 10"
    assert geometry.positions[9] is None, "an id without pixels has no position"
    assert geometry.positions[2] == pytest.approx(scene.patches[1].centre, abs=TOLERANCE_M)
    assert len(geometry.points) == 0


def test_erosion_keeps_wall_depth_at_the_silhouette_out(scene):
    view = scene.render()
    grown = np.zeros_like(view.labels)
    for patch in scene.patches:
        grown[cv2.dilate((view.labels == patch.id).view(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)] = patch.id
    intrinsics = intrinsics_from_camera_info(scene.camera_info())
    ids = [p.id for p in scene.patches]
    for erosion, leaks in ((0, True), (3, False)):
        geometry = locate_objects(view.depth, grown, intrinsics, ids, erosion, min_valid=10, cloud_stride=1)
        on_wall = np.isclose(geometry.points[:, 2], 3.0)
        assert on_wall.any() == leaks, erosion
        for patch in scene.patches:
            assert geometry.positions[patch.id] == pytest.approx(patch.centre, abs=TOLERANCE_M)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_points_lie_on_their_patches_on_the_stride_grid(scene, encoding):
    view = scene.render()
    stride = 3
    geometry = located(scene, encoding, erosion=0, stride=stride)
    grid = view.labels[::stride, ::stride]
    assert len(geometry.points) == np.count_nonzero(grid)
    assert geometry.points.dtype == np.float32 and geometry.point_ids.dtype == np.uint16
    centres = {p.id: p.centre for p in scene.patches}
    z_of = np.array([centres[i][2] for i in geometry.point_ids])
    np.testing.assert_allclose(geometry.points[:, 2], z_of, atol=1e-3)
    u = scene.fx * geometry.points[:, 0] / geometry.points[:, 2] + scene.cx
    v = scene.fy * geometry.points[:, 1] / geometry.points[:, 2] + scene.cy
    us, vs = np.round(u).astype(int), np.round(v).astype(int)
    np.testing.assert_allclose(u, us, atol=0.05)
    assert (us % stride == 0).all() and (vs % stride == 0).all()
    np.testing.assert_array_equal(view.labels[vs, us], geometry.point_ids)


def test_depth_and_labels_of_different_sizes_are_refused(scene):
    intrinsics = intrinsics_from_camera_info(scene.camera_info())
    with pytest.raises(DepthError, match="differ in size"):
        locate_objects(np.ones((10, 10), np.float32), np.zeros((10, 12), np.uint16), intrinsics, [1], 0, 1, None)


# stamp pairing -------------------------------------------------------------------------------------


def test_stamp_buffer_pairs_exactly_or_within_the_slop():
    buffer = StampBuffer(capacity=3, slop_ns=10)
    assert buffer.lookup(100).item is None and buffer.lookup(100).offset_ns is None
    for stamp in (100, 200, 300):
        buffer.add(stamp, f"d{stamp}")
    assert buffer.lookup(200).item == "d200" and buffer.lookup(200).offset_ns == 0
    assert buffer.lookup(208).item == "d200" and buffer.lookup(208).offset_ns == -8
    far = buffer.lookup(250)
    assert far.item is None and abs(far.offset_ns) == 50
    buffer.add(200, "d200-again")
    assert buffer.lookup(200).item == "d200-again", "the newest of equal stamps"
    assert len(buffer) == 3 and buffer.lookup(100).item is None, "bounded: the oldest was dropped"
    buffer.slop_ns = 60
    assert buffer.lookup(250).item in ("d200-again", "d300")


def test_stamp_buffer_refuses_a_bad_size():
    with pytest.raises(ValueError):
        StampBuffer(capacity=0, slop_ns=0)


# messages ------------------------------------------------------------------------------------------


def header(stamp_s=12, frame="camera_color_optical_frame"):
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = stamp_s, 345
    return h


def test_cloud_byte_layout(scene):
    geometry = located(scene, "32FC1", stride=4)
    msg = objects_cloud(geometry.points, geometry.point_ids, header())
    n = len(geometry.points)
    assert n > 0 and (msg.height, msg.width) == (1, n)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1),
        ("y", 4, PointField.FLOAT32, 1),
        ("z", 8, PointField.FLOAT32, 1),
        ("id", 12, PointField.UINT16, 1),
    ]
    assert (msg.point_step, msg.row_step, msg.is_bigendian, msg.is_dense) == (16, 16 * n, False, True)
    assert len(msg.data) == msg.row_step * msg.height
    assert msg.header.frame_id == "camera_color_optical_frame" and msg.header.stamp.nanosec == 345
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(n, 16)
    xyz = raw[:, :12].copy().view("<f4")
    np.testing.assert_array_equal(xyz, geometry.points)
    np.testing.assert_array_equal(raw[:, 12:14].copy().view("<u2")[:, 0], geometry.point_ids)


def test_empty_cloud():
    msg = objects_cloud(np.zeros((0, 3), np.float32), np.zeros(0, np.uint16), header())
    assert (msg.width, msg.row_step, len(msg.data), msg.point_step) == (0, 0, 0, 16)


def test_markers_follow_positions_and_are_deleted_when_unknown_or_gone():
    markers = ObjectMarkers()
    first = markers.update([(1, "chair", (0.1, 0.2, 1.5)), (2, "", (0.0, 0.0, 2.0)), (3, "box", None)], header())
    assert [(m.id, m.action, m.type, m.text) for m in first.markers] == [
        (1, Marker.ADD, Marker.TEXT_VIEW_FACING, "1: chair"),
        (2, Marker.ADD, Marker.TEXT_VIEW_FACING, "2"),
    ]
    m = first.markers[0]
    assert (m.pose.position.x, m.pose.position.y, m.pose.position.z) == pytest.approx((0.1, 0.2, 1.5))
    assert m.header.frame_id == "camera_color_optical_frame" and m.ns and m.scale.z > 0 and m.color.a == 1.0
    second = markers.update([(1, "chair", None)], header(13))  # 1 lost, 2 removed
    assert [(m.id, m.action) for m in second.markers] == [(1, Marker.DELETE), (2, Marker.DELETE)]
    assert markers.update([], header(14)).markers == []


# the node's depth inputs ---------------------------------------------------------------------------


def fusion_locate(fusion, scene, stamp_ns, slop_s=0.01):
    view = scene.render()
    return fusion.locate(stamp_ns, view.labels, [1, 2], slop_s=slop_s, erosion=2, min_valid=10, cloud_stride=2)


def test_fusion_pairs_depth_by_stamp_and_names_what_is_missing(scene):
    fusion = DepthFusion(slop_s=0.01)
    assert fusion_locate(fusion, scene, 1_000_000_000) == Located(None), "no depth yet: silently nothing"
    fusion.add_depth(depth_image(scene.render(80, 60).depth, "16UC1"), 1_000_000_000)
    assert "no CameraInfo received yet" in fusion_locate(fusion, scene, 1_000_000_000).problem
    with pytest.raises(DepthError, match="focal length"):
        fusion.set_camera_info(scene.camera_info(focal_scale=0.0))
    assert "refused CameraInfo" in fusion_locate(fusion, scene, 1_000_000_000).problem
    fusion.set_camera_info(scene.camera_info())
    result = fusion_locate(fusion, scene, 1_005_000_000)
    assert result.problem is None
    for patch in scene.patches:
        assert result.geometry.positions[patch.id] == pytest.approx(patch.centre, abs=TOLERANCE_M)
    assert len(result.geometry.points) > 0
    far = fusion_locate(fusion, scene, 1_500_000_000)
    assert far.geometry is None and "nearest is -0.500 s away" in far.problem
    assert fusion_locate(fusion, scene, 1_500_000_000, slop_s=1.0).problem is None, "the slop is live"


def test_fusion_refuses_depth_it_cannot_register(scene):
    fusion = DepthFusion(slop_s=0.0)
    fusion.set_camera_info(scene.camera_info())
    with pytest.raises(DepthError, match="unsupported depth encoding 'bgr8'"):
        fusion.add_depth(Image(height=1, width=1, encoding="bgr8", step=3, data=[0, 0, 0]), 5)
    fusion.add_depth(depth_image(np.ones((90, 160), np.float32), "32FC1"), 5)
    assert "aspect ratios differ" in fusion_locate(fusion, scene, 5).problem


def test_positions_fill_only_known_objects():
    nan = float("nan")
    objects = [TrackedObject(id=i) for i in (1, 2)]
    for obj in objects:
        obj.position.x = obj.position.y = obj.position.z = nan
    msg = TrackedObjectArray(objects=objects)
    set_positions(msg, {1: (0.5, -0.25, 2.0), 2: None})
    p1, p2 = msg.objects[0].position, msg.objects[1].position
    assert (p1.x, p1.y, p1.z) == (0.5, -0.25, 2.0)
    assert np.isnan([p2.x, p2.y, p2.z]).all()
