"""camera_geometry: raw images back-project through K and the distortion D, rectified images through
the projection P. Known 3D points are projected with OpenCV's own camera models and must come back."""

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from vos_ros.ros.depth import DepthError, Intrinsics, intrinsics_from_camera_info, locate_objects
from vos_ros.ros.depth_fusion import DepthFusion
from vos_ros.ros.parameters import SPECS

WIDTH, HEIGHT = 640, 480
K = [520.0, 0.0, 318.0, 0.0, 515.0, 242.0, 0.0, 0.0, 1.0]
P = [430.0, 0.0, 325.0, 0.0, 0.0, 432.0, 236.0, 0.0, 0.0, 0.0, 1.0, 0.0]
PLUMB_BOB = [-0.28, 0.09, 0.001, -0.0005, 0.0]
POINTS = np.array([[0.3, -0.2, 1.5], [-0.4, 0.25, 2.0], [0.0, 0.0, 1.0], [0.5, 0.3, 1.2]])


def camera_info(d=(), model="plumb_bob", k=K, p=P) -> CameraInfo:
    return CameraInfo(width=WIDTH, height=HEIGHT, k=k, p=p, d=list(d), distortion_model=model)


def k_matrix() -> np.ndarray:
    return np.array(K).reshape(3, 3)


def rays(intrinsics: Intrinsics, pixels: np.ndarray) -> np.ndarray:
    x, y = intrinsics.normalised(pixels[:, 0], pixels[:, 1])
    return np.stack([x, y], axis=1)


def test_raw_geometry_undoes_plumb_bob_distortion():
    pixels, _ = cv2.projectPoints(POINTS, np.zeros(3), np.zeros(3), k_matrix(), np.array(PLUMB_BOB))
    intrinsics = intrinsics_from_camera_info(camera_info(PLUMB_BOB), "raw")
    assert (intrinsics.fx, intrinsics.cy, intrinsics.distortion_model) == (520.0, 242.0, "plumb_bob")
    expected = POINTS[:, :2] / POINTS[:, 2:]
    np.testing.assert_allclose(rays(intrinsics, pixels.reshape(-1, 2)), expected, atol=1e-4)
    plain = Intrinsics(520.0, 515.0, 318.0, 242.0)
    assert np.abs(rays(plain, pixels.reshape(-1, 2)) - expected).max() > 0.01, "the distortion matters here"


def test_raw_geometry_undoes_equidistant_distortion():
    d = [0.05, -0.01, 0.002, -0.0004]
    pixels, _ = cv2.fisheye.projectPoints(POINTS.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), k_matrix(), np.array(d))
    intrinsics = intrinsics_from_camera_info(camera_info(d, "equidistant"), "raw")
    np.testing.assert_allclose(rays(intrinsics, pixels.reshape(-1, 2)), POINTS[:, :2] / POINTS[:, 2:], atol=1e-4)


def test_zero_distortion_is_plain_k():
    intrinsics = intrinsics_from_camera_info(camera_info([0.0] * 5), "raw")
    assert intrinsics == Intrinsics(520.0, 515.0, 318.0, 242.0, WIDTH, HEIGHT)


def test_rectified_geometry_uses_p_and_no_distortion():
    intrinsics = intrinsics_from_camera_info(camera_info(PLUMB_BOB), "rectified")
    assert intrinsics == Intrinsics(430.0, 432.0, 325.0, 236.0, WIDTH, HEIGHT)
    pixels = POINTS[:, :2] / POINTS[:, 2:] * [430.0, 432.0] + [325.0, 236.0]
    np.testing.assert_allclose(rays(intrinsics, pixels), POINTS[:, :2] / POINTS[:, 2:], atol=1e-9)


def test_unusable_camera_info_is_refused_with_the_reason():
    with pytest.raises(DepthError, match="P has no usable focal length"):
        intrinsics_from_camera_info(camera_info(p=[0.0] * 12), "rectified")
    with pytest.raises(DepthError, match="cannot undo distortion model 'fancy'"):
        intrinsics_from_camera_info(camera_info([0.1, 0.2, 0.0, 0.0, 0.0], "fancy"), "raw")
    with pytest.raises(DepthError, match="with 3 coefficients"):
        intrinsics_from_camera_info(camera_info([0.1, 0.2, 0.3], "plumb_bob"), "raw")
    assert SPECS["camera_geometry"].problem("fisheye") is not None
    assert SPECS["camera_geometry"].default == "raw" and SPECS["camera_geometry"].problem("rectified") is None


def test_object_position_on_a_distorted_image():
    """A flat patch at a known 3D point, seen by the distorted camera: its position comes back."""
    centre = np.array([0.6, -0.4, 1.5])
    (pixel,), _ = cv2.projectPoints(centre.reshape(1, 3), np.zeros(3), np.zeros(3), k_matrix(), np.array(PLUMB_BOB))
    u, v = np.round(pixel[0]).astype(int)
    labels = np.zeros((HEIGHT, WIDTH), np.uint16)
    labels[v - 6 : v + 7, u - 6 : u + 7] = 1
    depth = np.full((HEIGHT, WIDTH), centre[2], np.float32)
    raw = intrinsics_from_camera_info(camera_info(PLUMB_BOB), "raw")
    (x, y, z) = locate_objects(depth, labels, raw, [1], 0, 10, None).positions[1]
    assert np.hypot(x - centre[0], y - centre[1]) < 0.005 and z == pytest.approx(centre[2])
    ignored = Intrinsics(520.0, 515.0, 318.0, 242.0)
    (x, y, _) = locate_objects(depth, labels, ignored, [1], 0, 10, None).positions[1]
    assert np.hypot(x - centre[0], y - centre[1]) > 0.02, "K alone misplaces it"


def test_fusion_takes_the_geometry_it_is_given():
    fusion = DepthFusion(0.02)
    fusion.set_camera_info(camera_info(PLUMB_BOB), "rectified")
    assert fusion.intrinsics.fx == 430.0 and not fusion.intrinsics.distorted
    fusion.set_camera_info(camera_info(PLUMB_BOB), "raw")
    assert fusion.intrinsics.fx == 520.0 and fusion.intrinsics.distorted
