"""vos_node as a separate process over real DDS: tracking, headers, overlay, services, bad input,
newest-frame behaviour and clean shutdown. One node process serves the whole module; the tests
run in file order on one continuous synthetic clip, each giving its own initial mask."""

import time

import numpy as np
import pytest
from sensor_msgs.msg import Image

from vos_ros.ros.client import VosClient, launch_node
from vos_ros.ros.convert import labels_to_image, mask_to_labels, rgb_to_image
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.stamps import make_header, stamp_to_ns
from vos_ros.synthetic import make_clip

pytestmark = pytest.mark.ros  # starts vos_node processes and talks DDS

HEIGHT, WIDTH = 180, 240
SHORT_SIDE = 192  # the `matching` config needs objects several feature cells wide
FRAME_ID = "camera_optical"  # the frame id VosClient.publish_frame stamps frames with
MIN_IOU = 0.5  # generous: the training-free `matching` config, a few frames after each mask


class Stream:
    """The clip's frames in order, each taken once; ``truth`` is the label map of the last frame taken."""

    def __init__(self):
        self.clip = make_clip(num_objects=3, num_frames=120, size=(HEIGHT, WIDTH), seed=1, speed=1.5)
        self.index = -1

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        self.index += 1
        return self.clip.frames[self.index], self.clip.labels[self.index]


def iou(labels: np.ndarray, truth: np.ndarray, object_id: int) -> float:
    a, b = labels == object_id, truth == object_id
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module")
def stream():
    return Stream()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with launch_node(
        ["-p", f"short_side:={SHORT_SIDE}", "-p", "diagnostics_period:=0.2"],
        tmp_path_factory.mktemp("vos_node") / "vos_node.log",
        domain_id=free_domain_id(),
        outputs=True,
    ) as client:
        yield client


def track(node: VosClient, stream: Stream, frames: int) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Send the next ``frames`` frames one by one; (labels, truth, stamp) of each."""
    out = []
    for _ in range(frames):
        rgb, truth = stream.next()
        msg, header = node.send_frame(rgb)
        out.append((mask_to_labels(msg), truth, stamp_to_ns(header.stamp)))
    return out


def start_tracking(node: VosClient, stream: Stream, ids=(1, 2, 3), names=()) -> int:
    """Give the objects ``ids`` of the next frame (their true masks); returns that frame's stamp."""
    rgb, truth = stream.next()
    _, header = node.send_frame(rgb)
    response = node.set_initial_mask(np.where(np.isin(truth, ids), truth, 0), stamp_to_ns(header.stamp), labels=names)
    assert response.success, response.message
    assert list(response.object_ids) == sorted(ids)
    return stamp_to_ns(header.stamp)


def mean_iou(frames, object_id: int) -> float:
    return float(np.mean([iou(labels, truth, object_id) for labels, truth, _ in frames]))


def test_labels_track_the_clip_with_the_input_header(node, stream):
    rgb, truth = stream.next()
    first, header = node.send_frame(rgb)
    assert not mask_to_labels(first).any(), "before a mask every pixel is background"
    assert node.tracked(stamp_to_ns(header.stamp)).objects == []

    initial = np.where(truth == 3, 0, truth)  # objects 1 and 2; 3 is added later
    response = node.set_initial_mask(initial, stamp_to_ns(header.stamp), labels=["disc", "box"])
    assert response.success, response.message
    assert list(response.object_ids) == [1, 2]

    ious = {1: [], 2: []}
    for index in range(10):
        rgb, truth = stream.next()
        msg, header = node.send_frame(rgb, encoding="bgr8" if index % 2 else "rgb8")
        assert (msg.encoding, msg.height, msg.width) == ("mono16", HEIGHT, WIDTH)
        assert msg.header.stamp == header.stamp and msg.header.frame_id == header.frame_id
        labels = mask_to_labels(msg)
        assert set(np.unique(labels)) <= {0, 1, 2}
        for k in ious:
            ious[k].append(iou(labels, truth, k))
        objects = node.tracked(stamp_to_ns(header.stamp))
        assert objects.header.stamp == header.stamp and objects.header.frame_id == header.frame_id
        assert [(o.id, o.label) for o in objects.objects] == [(1, "disc"), (2, "box")]
        for obj in objects.objects:
            ys, xs = np.nonzero(labels == obj.id)
            assert obj.area == len(ys)
            if obj.area:
                assert (obj.bbox.x_offset, obj.bbox.y_offset) == (xs.min(), ys.min())
                assert (obj.bbox.width, obj.bbox.height) == (xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
                assert obj.centroid_x == pytest.approx(xs.mean(), abs=1e-3)
            assert np.isnan(obj.position.x) and np.isnan(obj.position.z)
    for k, values in ious.items():
        assert np.mean(values) >= MIN_IOU, (k, values)


def test_overlay_only_while_subscribed(node, stream):
    track(node, stream, 2)
    assert int(node.latest_diagnostics()["overlays_published"]) == 0

    overlays = node.subscribe(node.topic("overlay"), Image)
    assert node.wait(lambda: overlays.subscription.get_publisher_count() > 0, 10.0)
    stamps = []
    for _ in range(10):  # the node sees the new subscriber after discovery
        rgb, _ = stream.next()
        msg, header = node.send_frame(rgb)
        stamps.append(stamp_to_ns(header.stamp))
        if node.wait(lambda: stamps[-1] in overlays, 2.0):
            break
    overlay = overlays[stamps[-1]]
    assert (overlay.encoding, overlay.height, overlay.width) == ("rgb8", HEIGHT, WIDTH)
    assert overlay.header.stamp == header.stamp and overlay.header.frame_id == header.frame_id
    labels = mask_to_labels(msg)
    pixels = np.frombuffer(bytes(overlay.data), np.uint8).reshape(HEIGHT, WIDTH, 3)
    background = labels == 0
    np.testing.assert_array_equal(pixels[background], rgb[background])
    changed = np.any(pixels != rgb, axis=2)
    assert changed[~background].mean() > 0.9, "objects are tinted"

    node.unsubscribe(overlays)
    counts = []
    for _ in range(10):  # until the node has seen the subscriber go
        track(node, stream, 1)
        counts.append(int(node.latest_diagnostics()["overlays_published"]))
        if len(counts) >= 3 and counts[-1] == counts[-3]:
            break
    assert counts[-1] == counts[-3], f"overlays still computed without a subscriber: {counts}"


def test_append_remove_and_reset(node, stream):
    start_tracking(node, stream, ids=(1, 2), names=["disc", "box"])
    rgb, truth = stream.next()
    _, header = node.send_frame(rgb)
    stamp = stamp_to_ns(header.stamp)

    again = node.set_initial_mask(np.where(truth == 1, 1, 0), stamp, append=True)
    assert not again.success and "already tracked" in again.message

    added = node.set_initial_mask(np.where(truth == 3, 3, 0), stamp, labels=["third"], append=True)
    assert added.success, added.message
    assert list(added.object_ids) == [3]
    frames = track(node, stream, 4)
    for k in (1, 2, 3):
        assert mean_iou(frames, k) >= MIN_IOU, k
    objects = node.tracked(frames[-1][2]).objects
    assert [(o.id, o.label) for o in objects] == [(1, "disc"), (2, "box"), (3, "third")]

    removed = node.remove_objects([2])
    assert removed.success, removed.message
    frames = track(node, stream, 2)
    for labels, truth, stamp in frames:
        assert 2 not in labels
        assert [o.id for o in node.tracked(stamp).objects] == [1, 3]
        # the remaining objects keep their ids: pixels labelled k lie on object k
        for k in (1, 3):
            assert (labels == k).any() and (truth[labels == k] == k).mean() >= 0.5, k
    assert mean_iou(frames, 1) >= MIN_IOU

    unknown = node.remove_objects([2, 3])
    assert not unknown.success and "2" in unknown.message
    assert [o.id for o in node.tracked(track(node, stream, 1)[0][2]).objects] == [1, 3], "nothing removed"

    reset = node.reset()
    assert reset.success, reset.message
    labels, _, stamp = track(node, stream, 1)[0]
    assert not labels.any()
    assert node.tracked(stamp).objects == []


def mono8(labels: np.ndarray, header) -> Image:
    msg = labels_to_image(labels, header)
    msg.encoding, msg.step = "mono8", labels.shape[1]
    msg.data = labels.astype(np.uint8).tobytes()
    return msg


def test_bad_masks_are_refused_and_tracking_goes_on(node, stream):
    rgb, truth = stream.next()
    _, header = node.send_frame(rgb)
    stamp = stamp_to_ns(header.stamp)
    accepted = node.set_initial_mask(mono8(truth, make_header(0, FRAME_ID)), labels=["a", "b", "c"])  # 0: newest frame
    assert accepted.success, accepted.message
    assert list(accepted.object_ids) == [1, 2, 3]
    track(node, stream, 1)

    same = make_header(stamp, FRAME_ID)
    cases = {
        "wrong size": (
            labels_to_image(truth[:-8], same),
            f"mask is {WIDTH}x{HEIGHT - 8} but its frame is {WIDTH}x{HEIGHT}",
        ),
        "colour mask": (rgb_to_image(rgb, same), "unsupported encoding 'rgb8'"),
        "unknown stamp": (
            labels_to_image(truth, make_header(stamp + 1, FRAME_ID)),
            "no recent frame has the mask's stamp",
        ),
        "empty": (labels_to_image(np.zeros_like(truth), same), "empty"),
        "truncated": (
            Image(header=same, height=HEIGHT, width=WIDTH, encoding="mono8", step=WIDTH, data=b"\0" * 10),
            "expected step x height",
        ),
    }
    for name, (mask, expected) in cases.items():
        response = node.set_initial_mask(mask)
        assert not response.success, name
        assert expected in response.message, (name, response.message)
    labelled = node.set_initial_mask(truth, stamp, labels=["only one name"])
    assert not labelled.success and "labels" in labelled.message

    after = track(node, stream, 3)
    for k in (1, 2, 3):
        assert mean_iou(after, k) >= MIN_IOU, k
    assert [(o.id, o.label) for o in node.tracked(after[-1][2]).objects] == [(1, "a"), (2, "b"), (3, "c")]


def test_bad_frames_are_dropped_counted_and_tracking_goes_on(node, stream):
    start_tracking(node, stream)
    bad_before = int(node.latest_diagnostics()["bad_frames"])
    rgb, _ = stream.next()
    yuv = rgb_to_image(rgb, make_header(time.time_ns(), FRAME_ID))
    yuv.encoding = "yuv420"
    truncated = rgb_to_image(rgb, make_header(time.time_ns() + 1, FRAME_ID))
    truncated.data = bytes(truncated.data)[:-1]
    # one at a time: the node's input queue holds one frame (depth 1), a second could replace the first
    for expected, msg in enumerate((yuv, truncated), start=bad_before + 1):
        deadline = time.monotonic() + 10.0
        node.image_pub.publish(msg)
        while int(node.latest_diagnostics()["bad_frames"]) < expected:
            assert time.monotonic() < deadline, f"bad frame {msg.encoding} not counted"
    assert stamp_to_ns(yuv.header.stamp) not in node.labels and stamp_to_ns(truncated.header.stamp) not in node.labels

    frames = track(node, stream, 3)
    for k in (1, 2, 3):
        assert mean_iou(frames, k) >= MIN_IOU, k
    assert "unsupported encoding 'yuv420'" in node.process.log_path.read_text()


def test_newest_frame_under_a_fast_publisher(node, stream):
    start_tracking(node, stream)
    track(node, stream, 2)
    diagnostics = node.latest_diagnostics()
    dropped_before, model_ms = int(diagnostics["frames_dropped"]), float(diagnostics["model_ms"])
    stamps = []
    for _ in range(30):  # 100 Hz: far faster than inference
        rgb, _ = stream.next()
        stamps.append(time.time_ns())
        node.publish_frame(rgb, stamps[-1])
        time.sleep(0.01)
    assert node.wait(lambda: stamps[-1] in node.labels, 20.0), "the newest frame is always processed"
    answered = [s for s in stamps if s in node.labels]
    assert len(answered) < len(stamps), "inference cannot keep up with 100 Hz, so frames were skipped"
    latencies_ms = [(node.labels.received_ns[s] - s) / 1e6 for s in answered]
    # no queue builds up: every answer comes within a few inference times of its frame
    assert max(latencies_ms) < 4 * model_ms + 1000, (model_ms, latencies_ms)
    diagnostics = node.latest_diagnostics()
    assert int(diagnostics["frames_dropped"]) > dropped_before
    assert float(diagnostics["latency_ms"]) > 0
    assert diagnostics["objects_tracked"] == "3"


def test_sigint_stops_the_node_cleanly(node):
    code = node.process.stop()
    log = node.process.log_path.read_text()
    assert code == 0, log
    assert "shutting down" in log and "Traceback" not in log
