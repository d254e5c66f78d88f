"""sensor_msgs/Image <-> numpy conversion: every encoding, padded rows, endianness, bad messages."""

from types import SimpleNamespace

import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from vos_ros.ros.convert import (
    ImageConversionError,
    UnsupportedEncodingError,
    image_to_rgb,
    labels_to_image,
    mask_to_labels,
    rgb_to_image,
)

RNG = np.random.default_rng(7)
H, W = 5, 7


def make_msg(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """An Image whose rows are the pixel bytes followed by ``pad`` bytes of garbage."""
    if pixels.dtype == np.uint16:
        pixels = pixels.astype(">u2" if bigendian else "<u2")
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=bigendian)
    msg.step = padded.shape[1]
    msg.data = padded.tobytes()
    return msg


RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (H, W, 1), dtype=np.uint8)


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize(
    "encoding, pixels",
    [
        ("rgb8", RGB),
        ("bgr8", RGB[:, :, ::-1]),
        ("rgba8", np.concatenate([RGB, ALPHA], axis=2)),
        ("bgra8", np.concatenate([RGB[:, :, ::-1], ALPHA], axis=2)),
    ],
)
def test_colour_encodings_decode_to_rgb(encoding, pixels, pad):
    rgb = image_to_rgb(make_msg(np.ascontiguousarray(pixels), encoding, pad=pad))
    assert rgb.dtype == np.uint8 and rgb.shape == (H, W, 3)
    np.testing.assert_array_equal(rgb, RGB)


def test_mono8_decodes_to_grey_rgb():
    grey = RGB[:, :, 0].copy()
    rgb = image_to_rgb(make_msg(grey, "mono8", pad=2))
    assert rgb.shape == (H, W, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[:, :, channel], grey)


def test_decoded_image_does_not_share_the_message_buffer():
    msg = make_msg(RGB, "rgb8")
    rgb = image_to_rgb(msg)
    rgb[:] = 0
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_16bit_masks_honour_endianness_and_padding(encoding, bigendian):
    labels = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    labels[0, 0] = 0x0102  # byte order visible in one value
    out = mask_to_labels(make_msg(labels, encoding, pad=4, bigendian=bigendian))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, labels)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_8bit_masks(encoding):
    labels = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    out = mask_to_labels(make_msg(labels, encoding, pad=1))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, labels)


def test_plain_objects_with_numpy_data_are_accepted():
    """Messages deserialized by rosbags carry numpy arrays rather than array.array."""
    msg = make_msg(RGB, "bgr8", pad=1)
    plain = SimpleNamespace(
        height=msg.height,
        width=msg.width,
        encoding="bgr8",
        is_bigendian=0,
        step=msg.step,
        data=np.frombuffer(bytes(msg.data), np.uint8),
    )
    np.testing.assert_array_equal(image_to_rgb(plain), RGB[:, :, ::-1])


@pytest.mark.parametrize("encoding", ["yuv420", "32FC1", "16UC3", "", "RGB8"])
def test_unsupported_colour_encoding(encoding):
    msg = make_msg(RGB, "rgb8")
    msg.encoding = encoding
    with pytest.raises(UnsupportedEncodingError, match="unsupported encoding"):
        image_to_rgb(msg)


@pytest.mark.parametrize("encoding", ["rgb8", "32FC1", "mono32"])
def test_unsupported_mask_encoding(encoding):
    msg = make_msg(RGB, "rgb8")
    msg.encoding = encoding
    with pytest.raises(UnsupportedEncodingError, match=repr(encoding)):
        mask_to_labels(msg)


def test_unsupported_encoding_is_a_value_error():
    assert issubclass(UnsupportedEncodingError, ImageConversionError)
    assert issubclass(ImageConversionError, ValueError)


@pytest.mark.parametrize("extra", [-1, 1, -W * 3])
def test_data_size_mismatch(extra):
    msg = make_msg(RGB, "rgb8")
    msg.data = bytes(msg.data)[: len(msg.data) + extra] if extra < 0 else bytes(msg.data) + b"\0" * extra
    with pytest.raises(ImageConversionError, match="expected step x height"):
        image_to_rgb(msg)


def test_step_smaller_than_a_row():
    msg = make_msg(RGB, "rgb8")
    msg.step = W * 3 - 1
    msg.data = bytes(msg.step * H)
    with pytest.raises(ImageConversionError, match="smaller than one row"):
        image_to_rgb(msg)


@pytest.mark.parametrize("height, width", [(0, W), (H, 0), (0, 0)])
def test_empty_image(height, width):
    msg = Image(height=height, width=width, encoding="mono8", step=width)
    with pytest.raises(ImageConversionError, match="empty image"):
        mask_to_labels(msg)


def test_labels_to_image_is_little_endian_mono16_with_the_header():
    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    labels = RNG.integers(0, 65536, (H, W)).astype(np.int64)
    msg = labels_to_image(labels, header)
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == ("mono16", H, W, 2 * W, False)
    assert msg.header == header
    assert bytes(msg.data) == labels.astype("<u2").tobytes()
    np.testing.assert_array_equal(mask_to_labels(msg), labels)


def test_rgb_to_image_round_trip():
    header = Header(frame_id="cam")
    msg = rgb_to_image(RGB, header)
    assert (msg.encoding, msg.step, msg.header) == ("rgb8", 3 * W, header)
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)


@pytest.mark.parametrize("array", [RGB[:, :, 0], RGB.astype(np.uint16), np.concatenate([RGB, ALPHA], axis=2)])
def test_rgb_to_image_rejects_other_arrays(array):
    with pytest.raises(ImageConversionError):
        rgb_to_image(array, Header())


def test_labels_to_image_rejects_non_2d():
    with pytest.raises(ImageConversionError, match="H x W"):
        labels_to_image(RGB, Header())
