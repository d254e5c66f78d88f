"""The node's frame buffers: recent frames by stamp, the newest-frame slot."""

import threading
import time

import numpy as np
from std_msgs.msg import Header

from vos_ros.ros.compressed import compressed_to_rgb, rgb_to_compressed
from vos_ros.ros.convert import image_to_rgb, rgb_to_image
from vos_ros.ros.frames import Frame, NewestFrameSlot, RecentFrames
from vos_ros.synthetic import make_clip


def frame(stamp_ns: int, received: float | None = None) -> Frame:
    rgb = np.full((4, 6, 3), stamp_ns % 256, np.uint8)
    if received is None:
        return Frame(header=Header(), rgb=rgb, stamp_ns=stamp_ns)
    return Frame(header=Header(), rgb=rgb, stamp_ns=stamp_ns, received=received)


def test_recent_frames_find_by_stamp_and_forget_the_oldest():
    recent = RecentFrames(3)
    assert recent.find(0) is None and recent.describe() == "no frame received yet"
    for stamp in (10, 20, 30, 40):
        recent.add(frame(stamp))
    assert recent.find(10) is None, "capacity 3 keeps the newest three"
    assert recent.find(20).stamp_ns == 20
    assert recent.find(0).stamp_ns == 40, "stamp 0 means the newest frame"
    assert recent.find(25) is None
    assert "3 recent frames" in recent.describe()
    recent.resize(1)
    assert recent.find(30) is None and recent.find(40).stamp_ns == 40
    recent.clear()
    assert recent.find(0) is None


def test_recent_frames_prefer_the_newest_of_equal_stamps():
    recent = RecentFrames(5)
    first, second = frame(7), frame(7)
    recent.add(first)
    recent.add(second)
    assert recent.find(7) is second


def _arrived(msg, decode, stamp_ns: int) -> Frame:
    return Frame(header=msg.header, rgb=decode(msg), stamp_ns=stamp_ns)


def test_recent_frames_keep_a_smaller_message_instead_of_its_pixels_and_give_back_the_same_pixels():
    clip = make_clip(num_objects=2, num_frames=3, size=(120, 160), seed=3)
    recent = RecentFrames(10)
    jpeg = [rgb_to_compressed(rgb, Header(frame_id="cam")) for rgb in clip.frames]
    for stamp, msg in enumerate(jpeg, start=1):
        recent.add(_arrived(msg, compressed_to_rgb, stamp), msg, compressed_to_rgb)
    assert recent.nbytes() == sum(len(msg.data) for msg in jpeg) < clip.frames[0].nbytes
    found = recent.find(2)
    assert found.stamp_ns == 2 and found.header.frame_id == "cam"
    np.testing.assert_array_equal(found.rgb, compressed_to_rgb(jpeg[1]))  # what the worker segmented
    np.testing.assert_array_equal(recent.find(0).rgb, compressed_to_rgb(jpeg[2]))

    mono = rgb_to_image(clip.frames[0], Header())
    mono.encoding, mono.step = "mono8", 160
    mono.data = clip.frames[0][:, :, 1].tobytes()
    recent.add(_arrived(mono, image_to_rgb, 10), mono, image_to_rgb)
    assert recent.nbytes() - sum(len(msg.data) for msg in jpeg) == 120 * 160, "mono kept as one byte a pixel"
    np.testing.assert_array_equal(recent.find(10).rgb, np.repeat(clip.frames[0][:, :, 1:2], 3, axis=2))


def test_recent_frames_keep_the_pixels_when_the_message_is_no_smaller():
    rgb = make_clip(num_objects=1, num_frames=1, size=(48, 64), seed=0).frames[0]
    msg = rgb_to_image(rgb, Header())
    arrived = _arrived(msg, image_to_rgb, 5)
    recent = RecentFrames(2)
    recent.add(arrived, msg, image_to_rgb)
    assert recent.find(5) is arrived, "rgb8: the decoded frame is a view of the message, nothing to save"
    assert recent.nbytes() == rgb.nbytes


def test_newest_slot_replaces_a_waiting_frame_and_counts_it():
    slot = NewestFrameSlot()
    assert slot.put(frame(1)) is False
    assert slot.put(frame(2)) is True
    assert slot.put(frame(3)) is True
    assert slot.dropped == 2
    assert slot.take(timeout=0.1).stamp_ns == 3
    assert slot.take(timeout=0.05) is None, "nothing waits"
    assert slot.put(frame(4)) is False, "a taken frame is not dropped"
    assert slot.dropped == 2


def test_take_newer_swaps_in_a_frame_that_arrives_in_time():
    slot = NewestFrameSlot()
    stale = frame(1)
    assert slot.take_newer(stale, timeout=0.02) is stale, "nothing came"
    timer = threading.Timer(0.05, lambda: slot.put(frame(2)))
    timer.start()
    started = time.monotonic()
    fresh = slot.take_newer(stale, timeout=2.0)
    assert fresh.stamp_ns == 2 and time.monotonic() - started < 1.0, "returns as soon as the frame arrives"
    assert slot.dropped == 1, "the stale frame was skipped"
    slot.close()
    assert slot.take_newer(stale, timeout=2.0) is stale


def test_newest_slot_discards_frames_older_than_a_mask():
    slot = NewestFrameSlot()
    slot.put(frame(5))
    slot.discard_older_than(5)
    assert slot.take(timeout=0.01).stamp_ns == 5, "the mask's own frame stays"
    slot.put(frame(4))
    slot.discard_older_than(5)
    assert slot.take(timeout=0.01) is None


def test_newest_slot_wakes_a_blocked_consumer_on_put_and_close():
    slot = NewestFrameSlot()
    taken = []
    consumer = threading.Thread(target=lambda: taken.extend([slot.take(), slot.take()]))
    consumer.start()
    time.sleep(0.05)
    slot.put(frame(9))
    time.sleep(0.05)
    slot.close()
    consumer.join(timeout=2.0)
    assert not consumer.is_alive()
    assert taken[0].stamp_ns == 9 and taken[1] is None
    slot.put(frame(10))
    assert slot.take(timeout=0.01) is None, "closed for good"
