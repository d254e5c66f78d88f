"""sensor_msgs/CompressedImage <-> numpy: JPEG and PNG streams as image_transport's "compressed" plugin writes them.

``format`` is either a bare codec (``jpeg``, ``jpg``, ``png``: ROS 1 and many drivers) or
image_transport's ``<original encoding>; <codec> compressed <stream encoding>``, e.g.
``bgr8; jpeg compressed bgr8``, ``rgb8; png compressed bgr8``, ``mono8; jpeg compressed mono8``.
The stream itself says whether it is colour or grey (OpenCV decodes colour as BGR, whatever the
original encoding was), so only the codec is taken from ``format``; it must match the data's
signature. Depth streams (``compressedDepth``, 16UC1/32FC1 originals) are not colour images and
are refused. 16-bit PNG streams keep the high byte of each value, like 16-bit raw images.

Decoding accepts any object with ``format`` and ``data`` fields (rclpy or rosbags messages).
"""

from __future__ import annotations

import array

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage

from vos_ros.ros.convert import ImageConversionError

CODECS = ("jpeg", "png")
_ALIASES = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}
_SIGNATURES = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}
_PNG_END = b"IEND\xae\x42\x60\x82"  # the IEND chunk's type and CRC close every PNG stream
_JPEG_END = b"\xff\xd9"  # end-of-image marker
_JPEG_TAIL = 64  # bytes after the end-of-image marker that are tolerated (encoders may pad)
_NOT_COLOUR = ("16UC1", "32FC1", "8UC1")  # originals of depth and label streams
DEFAULT_JPEG_QUALITY = 80


class CompressedImageError(ImageConversionError):
    """A CompressedImage cannot be decoded: unknown format string, damaged or truncated data."""


def parse_format(text: str) -> tuple[str | None, str]:
    """(original encoding or None, codec ``jpeg``/``png``) of a CompressedImage ``format`` string."""
    fields = [part.strip() for part in text.split(";")]
    if len(fields) == 1:
        original, description = None, fields[0]
    elif len(fields) == 2:
        original, description = fields[0] or None, fields[1]
    else:
        raise CompressedImageError(f"cannot read the compressed format {text!r}")
    words = description.lower().split()
    if "compresseddepth" in words:
        raise CompressedImageError(f"format {text!r} is a compressedDepth stream, not a colour image")
    codec = _ALIASES.get(words[0]) if words else None
    if codec is None or not (len(words) == 1 or (len(words) in (2, 3) and words[1] == "compressed")):
        raise CompressedImageError(
            f"unsupported compressed format {text!r} (expected jpeg or png, e.g. 'jpeg' or 'bgr8; jpeg compressed bgr8')"
        )
    if original in _NOT_COLOUR:
        raise CompressedImageError(f"format {text!r} holds a {original} image (depth or labels), not a colour image")
    return original, codec


def _check_stream(data: np.ndarray, codec: str, text: str) -> None:
    if data.size == 0:
        raise CompressedImageError("compressed image holds no data")
    head = data[:8].tobytes()
    if not head.startswith(_SIGNATURES[codec]):
        found = next((name for name, sig in _SIGNATURES.items() if head.startswith(sig)), None)
        what = f"a {found.upper()} stream" if found else "not a JPEG or PNG stream"
        raise CompressedImageError(f"format {text!r} says {codec} but the data is {what}")
    tail = data[-_JPEG_TAIL:].tobytes() if codec == "jpeg" else data[-len(_PNG_END) :].tobytes()
    if (codec == "jpeg" and _JPEG_END not in tail) or (codec == "png" and tail != _PNG_END):
        raise CompressedImageError(f"{codec} stream of {data.size} bytes is truncated (no end marker)")


def compressed_to_rgb(msg) -> np.ndarray:
    """A JPEG or PNG CompressedImage as a new H x W x 3 uint8 RGB array; CompressedImageError otherwise."""
    text = str(msg.format)
    _, codec = parse_format(text)
    data = np.frombuffer(msg.data, dtype=np.uint8)
    _check_stream(data, codec, text)
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise CompressedImageError(f"{codec} stream of {data.size} bytes cannot be decoded (damaged data)")
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        raise CompressedImageError(f"{codec} stream decodes to {pixels.dtype} pixels, not 8 or 16 bit")
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def encode_rgb(rgb: np.ndarray, codec: str = "jpeg", quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """An H x W x 3 uint8 RGB array as a JPEG (``quality`` 1-100) or PNG stream."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageConversionError(f"expected an H x W x 3 uint8 array, got {rgb.dtype} {rgb.shape}")
    if codec not in CODECS:
        raise ImageConversionError(f"unknown codec {codec!r} (expected one of {', '.join(CODECS)})")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else []
    ok, stream = cv2.imencode(f".{codec}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageConversionError(f"OpenCV could not encode a {rgb.shape[1]}x{rgb.shape[0]} {codec} image")
    return stream.tobytes()


def compressed_format(codec: str) -> str:
    """The ``format`` image_transport writes for an rgb8 image sent as ``codec`` (OpenCV encodes BGR)."""
    return f"rgb8; {codec} compressed bgr8"


def rgb_to_compressed(rgb: np.ndarray, header, codec: str = "jpeg", quality: int = DEFAULT_JPEG_QUALITY):
    """A CompressedImage of an H x W x 3 uint8 RGB array, with the given header."""
    msg = CompressedImage()
    msg.header = header
    msg.format = compressed_format(codec)
    msg.data = array.array("B", encode_rgb(rgb, codec, quality))
    return msg
