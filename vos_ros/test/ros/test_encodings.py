"""Camera encodings beyond 8-bit RGB: 16-bit colour, YUV 4:2:2 and Bayer, against hand-made known answers.

The references below are written from the documented formulas (ITU-R BT.601 limited range in
OpenCV's 20-bit fixed point; bilinear demosaicing with replicated borders), pixel by pixel in
plain Python, independent of the code under test.
"""

import numpy as np
import pytest
from sensor_msgs.msg import Image

from vos_ros.ros.convert import COLOR_ENCODINGS, ImageConversionError, UnsupportedEncodingError, image_to_rgb

RNG = np.random.default_rng(23)


def make_msg(raw: np.ndarray, encoding: str, width: int, pad: int = 0, bigendian: bool = False) -> Image:
    """An Image of ``raw`` (H x row values: uint8 bytes or uint16 words) with ``pad`` garbage bytes per row."""
    if raw.dtype == np.uint16:
        raw = raw.astype(">u2" if bigendian else "<u2")
    rows = np.ascontiguousarray(raw).reshape(raw.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=raw.shape[0], width=width, encoding=encoding, is_bigendian=bigendian)
    msg.step = padded.shape[1]
    msg.data = padded.tobytes()
    return msg


# 16-bit colour -------------------------------------------------------------------------------


def test_16bit_values_keep_their_high_byte():
    words = np.array([[0, 255, 256, 0x1234], [0x80FF, 0xFF00, 65534, 65535]], np.uint16)
    msg = make_msg(words, "mono16", width=4)
    rgb = image_to_rgb(msg)
    expected = np.array([[0, 0, 1, 0x12], [0x80, 0xFF, 0xFF, 0xFF]], np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[:, :, channel], expected)


@pytest.mark.parametrize("pad", [0, 2, 5])
@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding", ["rgb16", "bgr16", "rgba16", "bgra16", "mono16"])
def test_16bit_colour_encodings(encoding, bigendian, pad):
    height, width = 3, 5  # odd width
    channels = {"rgb16": 3, "bgr16": 3, "rgba16": 4, "bgra16": 4, "mono16": 1}[encoding]
    words = RNG.integers(0, 65536, (height, width, channels), dtype=np.uint16)
    words[0, 0, 0] = 0x01FF  # high byte 1, low byte 255: a byte-order mistake gives 255
    msg = make_msg(words, encoding, width, pad=pad, bigendian=bigendian)
    rgb = image_to_rgb(msg)
    assert rgb.dtype == np.uint8 and rgb.shape == (height, width, 3)
    for y in range(height):
        for x in range(width):
            values = [int(v) // 256 for v in words[y, x]]
            if channels == 1:
                expected = values * 3
            elif encoding.startswith("bgr"):
                expected = values[2::-1]
            else:
                expected = values[:3]
            assert rgb[y, x].tolist() == expected, (y, x)
    if channels > 1 and not encoding.startswith("bgr"):
        assert rgb[0, 0, 0] == 1


# YUV 4:2:2 -----------------------------------------------------------------------------------


def yuv_to_rgb(y: int, u: int, v: int) -> list[int]:
    """ITU-R BT.601 limited range, OpenCV's 20-bit fixed point (imgproc color_yuv: ITUR_BT_601_*)."""
    shift, cy, cub, cug, cvg, cvr = 20, 1220542, 2116026, -409993, -852492, 1673527
    half = 1 << (shift - 1)
    luma = max(0, y - 16) * cy
    r = luma + half + cvr * (v - 128)
    g = luma + half + cvg * (v - 128) + cug * (u - 128)
    b = luma + half + cub * (u - 128)
    return [min(255, max(0, c >> shift)) for c in (r, g, b)]


def test_yuv_reference_gives_the_known_colours():
    assert yuv_to_rgb(16, 128, 128) == [0, 0, 0]  # video black
    assert yuv_to_rgb(235, 128, 128) == [255, 255, 255]  # video white: 1.164 * 219 = 255.0
    assert yuv_to_rgb(128, 128, 128) == [130, 130, 130]  # 1.164 * 112 = 130.4
    assert yuv_to_rgb(0, 128, 128) == [0, 0, 0]  # below video black
    assert yuv_to_rgb(81, 90, 240) == [254, 0, 0]  # BT.601 red: 1.164 * 65 + 1.596 * 112 = 254.4


def pack_yuv422(y: np.ndarray, u: np.ndarray, v: np.ndarray, order: str) -> np.ndarray:
    """H x W luma and H x W/2 chroma as H x 2W bytes in ``order`` (``uyvy`` or ``yuyv``)."""
    height, width = y.shape
    out = np.zeros((height, 2 * width), np.uint8)
    planes = {"y0": y[:, 0::2], "y1": y[:, 1::2], "u": u, "v": v}
    names = ("u", "y0", "v", "y1") if order == "uyvy" else ("y0", "u", "y1", "v")
    for offset, name in enumerate(names):
        out[:, offset::4] = planes[name]
    return out


@pytest.mark.parametrize(
    "encoding, order", [("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuv422_yuy2", "yuyv"), ("yuyv", "yuyv")]
)
def test_yuv422_known_colours(encoding, order):
    # one row of four pixels: black and white sharing neutral chroma, then two reds
    y = np.array([[16, 235, 81, 81]], np.uint8)
    u = np.array([[128, 90]], np.uint8)
    v = np.array([[128, 240]], np.uint8)
    rgb = image_to_rgb(make_msg(pack_yuv422(y, u, v, order), encoding, width=4))
    assert rgb.tolist() == [[[0, 0, 0], [255, 255, 255], [254, 0, 0], [254, 0, 0]]]


@pytest.mark.parametrize("pad", [0, 1, 6])
@pytest.mark.parametrize("encoding, order", [("yuv422", "uyvy"), ("yuv422_yuy2", "yuyv")])
def test_yuv422_every_pixel_follows_the_formula(encoding, order, pad):
    height, width = 3, 6
    y = RNG.integers(0, 256, (height, width), dtype=np.uint8)
    u = RNG.integers(0, 256, (height, width // 2), dtype=np.uint8)
    v = RNG.integers(0, 256, (height, width // 2), dtype=np.uint8)
    rgb = image_to_rgb(make_msg(pack_yuv422(y, u, v, order), encoding, width, pad=pad))
    assert rgb.dtype == np.uint8 and rgb.shape == (height, width, 3)
    for row in range(height):
        for x in range(width):
            expected = yuv_to_rgb(int(y[row, x]), int(u[row, x // 2]), int(v[row, x // 2]))
            assert rgb[row, x].tolist() == expected, (row, x)


def test_uyvy_and_yuyv_differ():
    data = RNG.integers(0, 256, (2, 8), dtype=np.uint8)
    a = image_to_rgb(make_msg(data, "uyvy", width=4))
    b = image_to_rgb(make_msg(data, "yuyv", width=4))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("encoding", ["yuv422", "yuyv"])
def test_yuv422_odd_width_is_refused(encoding):
    msg = make_msg(np.zeros((2, 10), np.uint8), encoding, width=5)
    with pytest.raises(ImageConversionError, match="odd width 5"):
        image_to_rgb(msg)


# Bayer ---------------------------------------------------------------------------------------

PATTERNS = {"bayer_rggb8": "RGGB", "bayer_bggr8": "BGGR", "bayer_gbrg8": "GBRG", "bayer_grbg8": "GRBG"}


def mosaic(scene: np.ndarray, pattern: str) -> np.ndarray:
    """What a sensor with the 2 x 2 colour filter ``pattern`` (row-major, top-left first) records of an RGB scene."""
    out = np.zeros(scene.shape[:2], np.uint8)
    for dy in range(2):
        for dx in range(2):
            channel = "RGB".index(pattern[2 * dy + dx])
            out[dy::2, dx::2] = scene[dy::2, dx::2, channel]
    return out


def demosaic_reference(raw: np.ndarray, pattern: str) -> np.ndarray:
    """Bilinear demosaicing: a missing colour is the mean (rounded half up) of the nearest samples of that
    colour (2 in line or 4 around); the outermost rows and columns copy their inner neighbours."""
    height, width = raw.shape
    values = raw.astype(int)
    colour = [["RGB".index(pattern[2 * (y % 2) + (x % 2)]) for x in range(width)] for y in range(height)]
    out = np.zeros((height, width, 3), int)
    for y in range(1, height - 1):
        for x in range(1, width - 1):
            out[y, x, colour[y][x]] = values[y, x]
            for channel in {0, 1, 2} - {colour[y][x]}:
                around = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if colour[y + dy][x + dx] == channel]
                nearest = min(abs(dy) + abs(dx) for dy, dx in around)
                samples = [values[y + dy, x + dx] for dy, dx in around if abs(dy) + abs(dx) == nearest]
                out[y, x, channel] = (2 * sum(samples) + len(samples)) // (2 * len(samples))
    out[0], out[-1] = out[1], out[-2]
    out[:, 0], out[:, -1] = out[:, 1], out[:, -2]
    return out.astype(np.uint8)


def test_demosaic_reference_by_hand():
    # RGGB 3 x 3: R G R / G B G / R G R; the centre (a B site) gets R from its 4 diagonals, G from its 4 sides
    raw = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 91]], np.uint8)
    centre = demosaic_reference(raw, "RGGB")[1, 1].tolist()
    assert centre == [(10 + 30 + 70 + 91 + 2) // 4, (20 + 40 + 60 + 80 + 2) // 4, 50] == [50, 50, 50]
    raw[2, 2] = 93  # 10 + 30 + 70 + 93 = 203: 50.75 rounds to 51
    assert demosaic_reference(raw, "RGGB")[1, 1].tolist() == [51, 50, 50]


@pytest.mark.parametrize("size", [(3, 3), (4, 6), (5, 7), (6, 3)])
@pytest.mark.parametrize("encoding", PATTERNS)
def test_bayer_uniform_scene_comes_back_exactly(encoding, size):
    scene = np.zeros((*size, 3), np.uint8)
    scene[:] = (200, 100, 30)  # three distinct values: a wrong pattern swaps or mixes them
    rgb = image_to_rgb(make_msg(mosaic(scene, PATTERNS[encoding]), encoding, width=size[1], pad=3))
    np.testing.assert_array_equal(rgb, scene)


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("size", [(6, 8), (5, 7)])
@pytest.mark.parametrize("encoding", PATTERNS)
def test_bayer_bilinear_known_answer(encoding, size, pad):
    raw = RNG.integers(0, 256, size, dtype=np.uint8)
    rgb = image_to_rgb(make_msg(raw, encoding, width=size[1], pad=pad))
    np.testing.assert_array_equal(rgb, demosaic_reference(raw, PATTERNS[encoding]))


@pytest.mark.parametrize("size", [(2, 5), (5, 2), (1, 1)])
def test_bayer_too_small_is_refused(size):
    msg = make_msg(np.zeros(size, np.uint8), "bayer_rggb8", width=size[1])
    with pytest.raises(ImageConversionError, match="too small to demosaic"):
        image_to_rgb(msg)


# all encodings -------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", COLOR_ENCODINGS)
def test_every_colour_encoding_checks_the_data_size(encoding):
    msg = make_msg(np.zeros((4, 64), np.uint8), encoding, width=4)
    msg.step = 64
    msg.data = bytes(64 * 4 - 1)
    with pytest.raises(ImageConversionError, match="expected step x height"):
        image_to_rgb(msg)


@pytest.mark.parametrize("encoding", ["bayer_rggb16", "yuv420", "nv12", "32FC1", "16UC3", "YUYV", "jpeg"])
def test_still_unsupported_encodings_are_named(encoding):
    msg = make_msg(np.zeros((4, 8), np.uint8), encoding, width=4)
    with pytest.raises(UnsupportedEncodingError, match=f"unsupported encoding {encoding!r}"):
        image_to_rgb(msg)
