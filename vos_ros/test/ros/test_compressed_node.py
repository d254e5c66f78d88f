"""vos_node with image_transport:=compressed as a separate process over real DDS: JPEG and PNG frames in
(on <image>/compressed of a remapped image topic), labels out with the frames' headers, bad compressed
data dropped with a warning while the node goes on, and ~/overlay/compressed only while subscribed."""

import time

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from vos_ros.ros.client import RELIABLE, VosClient, launch_node
from vos_ros.ros.compressed import compressed_to_rgb, encode_rgb, rgb_to_compressed
from vos_ros.ros.convert import mask_to_labels
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.stamps import make_header, stamp_to_ns
from vos_ros.synthetic import make_clip

pytestmark = pytest.mark.ros  # starts a vos_node process and talks DDS

HEIGHT, WIDTH = 180, 240
SHORT_SIDE = 192
IMAGE_TOPIC = "/cam/color"  # remapped image topic: the node subscribes to IMAGE_TOPIC + "/compressed"
FRAME_ID = "cam_optical"
MIN_IOU = 0.5


@pytest.fixture(scope="module")
def clip():
    return make_clip(num_objects=2, num_frames=60, size=(HEIGHT, WIDTH), seed=3, speed=1.5)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with launch_node(
        [
            "-r",
            f"image:={IMAGE_TOPIC}",
            "-p",
            "image_transport:=compressed",
            "-p",
            f"short_side:={SHORT_SIDE}",
            "-p",
            "diagnostics_period:=0.2",
            "-p",
            "warn_throttle:=0.0",  # every bad frame is logged: the test looks for each warning
            "-p",
            "use_depth:=false",
        ],
        tmp_path_factory.mktemp("vos_node") / "vos_node.log",
        domain_id=free_domain_id(),
        outputs=True,
        image_topic=f"{IMAGE_TOPIC}/compressed",
        image_type=CompressedImage,
    ) as client:
        yield client


def send(node: VosClient, rgb: np.ndarray, codec: str, attempts: int = 3):
    """Publish a frame as ``codec`` stamped now and wait for its labels; (labels Image, header)."""
    header = make_header(time.time_ns(), FRAME_ID)
    msg = rgb_to_compressed(rgb, header, codec, 95)
    stamp = stamp_to_ns(header.stamp)
    for _ in range(attempts):
        node.image_pub.publish(msg)
        if node.wait(lambda: stamp in node.labels, 20.0 / attempts):
            return node.labels[stamp], header
    raise AssertionError(f"no labels for a {codec} frame:\n{node.process.log_tail(30)}")


def iou(labels, truth, object_id):
    a, b = labels == object_id, truth == object_id
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_jpeg_and_png_frames_are_tracked_with_their_headers(node, clip):
    assert node.image_pub.topic_name == "/cam/color/compressed"
    _, header = send(node, clip.frames[0], "png")
    response = node.set_initial_mask(clip.labels[0], stamp_to_ns(header.stamp))
    assert response.success, response.message
    ious = {1: [], 2: []}
    for index in range(1, 9):
        codec = "jpeg" if index % 2 else "png"
        msg, header = send(node, clip.frames[index], codec)
        assert (msg.encoding, msg.height, msg.width) == ("mono16", HEIGHT, WIDTH)
        assert msg.header.stamp == header.stamp and msg.header.frame_id == FRAME_ID
        labels = mask_to_labels(msg)
        for k in ious:
            ious[k].append(iou(labels, clip.labels[index], k))
        assert [o.id for o in node.tracked(stamp_to_ns(header.stamp)).objects] == [1, 2]
    for k, values in ious.items():
        assert np.mean(values) >= MIN_IOU, (k, values)


def test_recent_frames_are_kept_compressed(node, clip):
    """The frames kept for stamp lookups are the JPEG messages (about 31 kB here), not 130 kB of pixels each."""
    raw_mb = HEIGHT * WIDTH * 3 / 1e6
    for index in range(32):  # more than frame_buffer_size (30): every kept frame is one of these
        send(node, clip.frames[index], "jpeg")
    values = node.latest_diagnostics(after=time.monotonic() + 0.3)
    kept_mb = float(values["frame_buffer_mb"])
    assert 30 * 0.02 < kept_mb < 30 * 0.05 < 30 * raw_mb, (kept_mb, 30 * raw_mb)


def test_bad_compressed_data_is_dropped_with_a_warning(node, clip):
    stream = encode_rgb(clip.frames[10], "jpeg", 90)
    bad = [
        ("jpeg", stream[: len(stream) // 2], "jpeg stream of"),  # truncated
        ("tiff", stream, "unsupported compressed format 'tiff'"),
        ("png", stream, "says png but the data is a JPEG stream"),
        ("16UC1; compressedDepth png", stream, "compressedDepth"),
    ]
    bad_before = int(node.latest_diagnostics()["bad_frames"])
    stamps = []
    for expected, (fmt, data, _) in enumerate(bad, start=bad_before + 1):
        header = make_header(time.time_ns(), FRAME_ID)
        stamps.append(stamp_to_ns(header.stamp))
        msg = CompressedImage(header=header, format=fmt)
        msg.data = data
        deadline = time.monotonic() + 10.0
        node.image_pub.publish(msg)  # one at a time: the node's input queue holds one frame
        while int(node.latest_diagnostics()["bad_frames"]) < expected:
            assert time.monotonic() < deadline, f"bad frame {fmt!r} not counted"
    assert not any(stamp in node.labels for stamp in stamps)
    node.process.check_alive()
    log = node.process.log_path.read_text()
    for _, _, warning in bad:
        assert f"dropping an image on {IMAGE_TOPIC}/compressed" in log and warning in log, warning
    msg, _ = send(node, clip.frames[11], "jpeg")  # tracking goes on
    assert iou(mask_to_labels(msg), clip.labels[11], 1) >= MIN_IOU


def test_compressed_overlay_only_while_subscribed(node, clip):
    send(node, clip.frames[12], "jpeg")
    assert int(node.latest_diagnostics()["overlays_published"]) == 0
    overlays = node.subscribe(node.topic("overlay/compressed"), CompressedImage, RELIABLE)
    assert node.wait(lambda: overlays.subscription.get_publisher_count() > 0, 10.0)
    assert node.wait(lambda: node.node.count_subscribers(node.topic("overlay/compressed")) > 0, 10.0)
    _, header = send(node, clip.frames[13], "png")
    stamp = stamp_to_ns(header.stamp)
    assert node.wait(lambda: stamp in overlays, 20.0), "an overlay for the frame"
    overlay = overlays[stamp]
    assert overlay.header.frame_id == FRAME_ID and overlay.format == "rgb8; jpeg compressed bgr8"
    rgb = compressed_to_rgb(overlay)
    assert rgb.shape == (HEIGHT, WIDTH, 3)
    assert np.abs(rgb.astype(int) - clip.frames[13]).mean() > 1.0, "objects are tinted"
    assert int(node.latest_diagnostics()["overlays_published"]) >= 1


def test_node_stops_cleanly(node):
    code = node.process.stop()
    log = node.process.log_path.read_text()
    assert code == 0, log
    assert "Traceback" not in log
