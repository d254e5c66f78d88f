"""sensor_msgs/CompressedImage decoding and encoding: image_transport format strings, JPEG and PNG, bad data."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from std_msgs.msg import Header

from vos_ros.ros.compressed import (
    CompressedImageError,
    compressed_to_rgb,
    encode_rgb,
    parse_format,
    rgb_to_compressed,
)
from vos_ros.ros.convert import ImageConversionError
from vos_ros.ros.parameters import SPECS

RNG = np.random.default_rng(5)
H, W = 6, 9  # odd width


def msg(fmt: str, data: bytes):
    return SimpleNamespace(format=fmt, data=np.frombuffer(data, np.uint8))


def smooth_rgb(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth colour image (JPEG keeps it within a few levels)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 90)], axis=2).astype(np.uint8)


def png_of_bgr(bgr: np.ndarray) -> bytes:
    return cv2.imencode(".png", bgr)[1].tobytes()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("jpeg", (None, "jpeg")),
        ("JPG", (None, "jpeg")),
        ("png", (None, "png")),
        ("bgr8; jpeg compressed bgr8", ("bgr8", "jpeg")),
        ("rgb8; png compressed bgr8", ("rgb8", "png")),
        ("rgb8; png compressed", ("rgb8", "png")),
        ("rgb8; jpeg", ("rgb8", "jpeg")),
        ("mono8; jpeg compressed mono8", ("mono8", "jpeg")),
        ("bayer_rggb8; jpeg compressed bgr8", ("bayer_rggb8", "jpeg")),
    ],
)
def test_format_strings_as_image_transport_writes_them(text, expected):
    assert parse_format(text) == expected


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "unsupported compressed format"),
        ("tiff", "unsupported compressed format 'tiff'"),
        ("h264", "unsupported compressed format"),
        ("bgr8; jpeg squashed bgr8", "unsupported compressed format"),
        ("16UC1; compressedDepth png", "compressedDepth"),
        ("16UC1; png compressed mono16", "depth or labels"),
        ("a; b; c", "cannot read"),
    ],
)
def test_bad_format_strings(text, reason):
    with pytest.raises(CompressedImageError, match=reason):
        parse_format(text)


@pytest.mark.parametrize("fmt", ["png", "rgb8; png compressed bgr8", "bgr8; png compressed bgr8"])
def test_png_colour_is_lossless_rgb(fmt):
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = compressed_to_rgb(msg(fmt, png_of_bgr(rgb[:, :, ::-1].copy())))
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    np.testing.assert_array_equal(out, rgb)


def test_png_known_pixels():
    bgr = np.zeros((1, 3, 3), np.uint8)
    bgr[0, 0] = (255, 0, 0)  # OpenCV writes BGR: blue
    bgr[0, 1] = (0, 0, 255)  # red
    bgr[0, 2] = (10, 20, 30)
    out = compressed_to_rgb(msg("png", png_of_bgr(bgr)))
    assert out.tolist() == [[[0, 0, 255], [255, 0, 0], [30, 20, 10]]]


def test_png_mono_and_16bit_and_alpha():
    grey = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    out = compressed_to_rgb(msg("mono8; png compressed mono8", png_of_bgr(grey)))
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], grey)
    words = np.array([[0x01FF, 0xFF00, 0x8000]], np.uint16)
    assert compressed_to_rgb(msg("png", png_of_bgr(words)))[:, :, 0].tolist() == [[1, 255, 128]]
    bgra = np.dstack([RNG.integers(0, 256, (H, W, 3), dtype=np.uint8), np.full((H, W), 7, np.uint8)])
    np.testing.assert_array_equal(compressed_to_rgb(msg("png", png_of_bgr(bgra))), bgra[:, :, 2::-1])


@pytest.mark.parametrize("fmt", ["jpeg", "bgr8; jpeg compressed bgr8", "rgb8; jpeg compressed bgr8"])
def test_jpeg_colour_decodes_close_to_the_original(fmt):
    rgb = smooth_rgb()
    out = compressed_to_rgb(msg(fmt, encode_rgb(rgb, "jpeg", 95)))
    assert out.shape == rgb.shape
    difference = np.abs(out.astype(int) - rgb.astype(int))
    assert difference.mean() < 2.0 and difference.max() <= 12
    swapped = np.abs(out.astype(int) - rgb[:, :, ::-1].astype(int))
    assert swapped.mean() > 20, "channel order is RGB"


def test_jpeg_mono():
    grey = smooth_rgb()[:, :, 0]
    stream = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    out = compressed_to_rgb(msg("mono8; jpeg compressed mono8", stream))
    assert out.shape == (*grey.shape, 3)
    assert np.abs(out[:, :, 1].astype(int) - grey).max() <= 8
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])


@pytest.mark.parametrize("codec", ["jpeg", "png"])
def test_truncated_streams_are_refused(codec):
    stream = encode_rgb(smooth_rgb(), codec, 90)
    for cut in (len(stream) // 2, len(stream) - 3, 10):
        with pytest.raises(CompressedImageError, match=r"truncated|cannot be decoded"):
            compressed_to_rgb(msg(codec, stream[:cut]))


def test_damaged_jpeg_body_is_refused_or_decodes_to_the_right_size():
    stream = bytearray(encode_rgb(smooth_rgb(), "jpeg", 90))
    stream[2:40] = bytes(38)  # header segments zeroed: no usable frame header
    with pytest.raises(CompressedImageError):
        compressed_to_rgb(msg("jpeg", bytes(stream)))


@pytest.mark.parametrize(
    "fmt, codec, reason",
    [
        ("png", "jpeg", "says png but the data is a JPEG stream"),
        ("bgr8; jpeg compressed bgr8", "png", "says jpeg but the data is a PNG stream"),
    ],
)
def test_format_that_disagrees_with_the_data(fmt, codec, reason):
    with pytest.raises(CompressedImageError, match=reason):
        compressed_to_rgb(msg(fmt, encode_rgb(smooth_rgb(), codec)))


@pytest.mark.parametrize("data", [b"", b"not an image at all", bytes(100)])
def test_data_that_is_no_image(data):
    with pytest.raises(CompressedImageError, match=r"no data|not a JPEG or PNG"):
        compressed_to_rgb(msg("jpeg", data))


def test_compressed_errors_are_image_conversion_errors():
    assert issubclass(CompressedImageError, ImageConversionError)


def test_rgb_to_compressed_keeps_the_header_and_round_trips():
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 3, 4
    rgb = smooth_rgb()
    jpeg = rgb_to_compressed(rgb, header, "jpeg", 90)
    assert jpeg.header == header and jpeg.format == "rgb8; jpeg compressed bgr8"
    assert np.abs(compressed_to_rgb(jpeg).astype(int) - rgb).mean() < 2.0
    png = rgb_to_compressed(rgb, header, "png")
    assert png.format == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(compressed_to_rgb(png), rgb)


def test_jpeg_quality_changes_the_size():
    rgb = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    assert len(encode_rgb(rgb, "jpeg", 20)) < len(encode_rgb(rgb, "jpeg", 95))


@pytest.mark.parametrize("array", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint16)])
def test_encode_rejects_other_arrays(array):
    with pytest.raises(ImageConversionError):
        encode_rgb(array)


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("image_transport", "theora", "image_transport 'theora' is not one of raw, compressed"),
        ("image_transport", "", "is not one of"),
        ("overlay_jpeg_quality", 0, "outside [1, 100]"),
        ("overlay_jpeg_quality", 101, "outside [1, 100]"),
    ],
)
def test_transport_parameters_refuse_bad_values(name, value, reason):
    assert reason in SPECS[name].problem(value)


def test_transport_parameters_accept_their_values():
    assert SPECS["image_transport"].read_only
    for value in ("raw", "compressed"):
        assert SPECS["image_transport"].problem(value) is None
    for value in (1, 80, 100):
        assert SPECS["overlay_jpeg_quality"].problem(value) is None
