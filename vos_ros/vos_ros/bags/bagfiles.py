"""Reading and writing rosbag2 files (sqlite3 or mcap storage) through the rosbags package.

Every failure of the underlying reader (missing or truncated files, broken metadata, type
definitions that do not parse) surfaces as one :class:`BagError` with the bag's path in it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys.store import Typestore

from vos_ros.ros.compressed import compressed_to_rgb
from vos_ros.ros.convert import image_to_rgb
from vos_ros.ros.stamps import ns_to_sec_nanosec

from .typestore import COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, project_typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
BAG_VERSION = 8  # the rosbag2 metadata version ROS 2 Jazzy writes


class BagError(ValueError):
    """A bag cannot be read or written, or does not hold what a tool needs."""


def _describe(path: Path, err: BaseException) -> str:
    reason = str(err) or type(err).__name__
    if isinstance(err, FileNotFoundError):
        return f"cannot read bag {path}: {reason}"
    return f"cannot read bag {path} (truncated, damaged or not a rosbag2): {reason}"


class BagReader:
    """An open bag: its topics and their types, and raw or deserialized messages."""

    def __init__(self, path: Path, reader: AnyReader):
        self.path = path
        self._reader = reader

    @property
    def topics(self) -> dict[str, str]:
        """Topic name -> message type."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def typestore(self) -> Typestore:
        """The types the bag defines (the project's types for bags that define none)."""
        return self._reader.typestore

    def message_count(self, topic: str) -> int:
        """How many messages the bag's metadata lists on a topic."""
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    def raw(self, topics: Iterable[str]) -> Iterator[tuple[str, int, bytes]]:
        """(topic, bag time in ns, serialized CDR bytes) in bag-time order, for the given topics."""
        wanted = set(topics)
        connections = [c for c in self._reader.connections if c.topic in wanted]
        if not connections:
            return
        try:
            for connection, timestamp, data in self._reader.messages(connections=connections):
                yield connection.topic, timestamp, data
        except Exception as err:
            raise BagError(_describe(self.path, err)) from err

    def deserialize(self, topic: str, data: bytes):
        """A message of ``topic`` from its serialized bytes."""
        msgtype = self.topics[topic]
        try:
            return self._reader.deserialize(data, msgtype)
        except Exception as err:
            raise BagError(f"cannot decode a {msgtype} message on {topic} in bag {self.path}: {err}") from err

    def messages(self, topics: Iterable[str]) -> Iterator[tuple[str, int, object]]:
        """(topic, bag time in ns, deserialized message) in bag-time order."""
        for topic, timestamp, data in self.raw(topics):
            yield topic, timestamp, self.deserialize(topic, data)


@contextmanager
def read_bag(path: str | Path) -> Iterator[BagReader]:
    """Open a rosbag2 folder or a single .db3/.mcap file for reading."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = AnyReader([path], default_typestore=project_typestore())
        reader.open()
    except Exception as err:
        raise BagError(_describe(path, err)) from err
    try:
        yield BagReader(path, reader)
    finally:
        reader.close()


def require_topic(bag: BagReader, topic: str, msgtype: str) -> None:
    """Raise a BagError unless ``topic`` is in the bag with type ``msgtype``."""
    topics = bag.topics
    if topic not in topics:
        listing = ", ".join(f"{name} ({kind})" for name, kind in sorted(topics.items())) or "none"
        raise BagError(f"bag {bag.path} has no topic {topic}; its topics: {listing}")
    if topics[topic] != msgtype:
        raise BagError(f"topic {topic} in bag {bag.path} has message type {topics[topic]}, expected {msgtype}")


class BagWriter:
    """A new bag being written: topics are added on first use with stored type definitions."""

    def __init__(self, writer: Writer, typestore: Typestore):
        self._writer = writer
        self.typestore = typestore
        self._connections = {}

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic (its type definition is stored in the bag)."""
        if topic in self._connections:
            return
        if msgtype not in self.typestore.types:
            raise BagError(f"no definition of message type {msgtype} for topic {topic}")
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.typestore)

    def write_raw(self, topic: str, msgtype: str, timestamp_ns: int, data: bytes) -> None:
        """Write an already serialized (CDR) message."""
        self.add_topic(topic, msgtype)
        self._writer.write(self._connections[topic], int(timestamp_ns), bytes(data))

    def write(self, topic: str, timestamp_ns: int, msg) -> None:
        """Serialize and write a rosbags message object."""
        msgtype = msg.__msgtype__
        self.write_raw(topic, msgtype, timestamp_ns, self.typestore.serialize_cdr(msg, msgtype))


@contextmanager
def write_bag(path: str | Path, storage: str = "mcap", typestore: Typestore | None = None) -> Iterator[BagWriter]:
    """Create a new bag folder (which must not exist yet); the bag is removed again if writing fails."""
    path = Path(path)
    if storage not in STORAGES:
        raise BagError(f"unknown storage {storage!r} (expected one of {', '.join(STORAGES)})")
    if path.exists():
        raise BagError(f"{path} exists already; choose another output path or remove it")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = Writer(path, version=BAG_VERSION, storage_plugin=STORAGES[storage])
    writer.open()
    try:
        yield BagWriter(writer, typestore or project_typestore())
    except BaseException:
        writer.close()
        shutil.rmtree(path, ignore_errors=True)
        raise
    writer.close()


def require_image_topic(bag: BagReader, topic: str) -> str:
    """The topic holding the colour images asked for as ``topic``: ``topic`` itself when it is an Image or
    CompressedImage topic, or ``<topic>/compressed`` (image_transport's naming) when only that is in the bag.
    Raises a BagError naming the bag's topics otherwise."""
    topics = bag.topics
    if topic not in topics and topics.get(f"{topic}/compressed") == COMPRESSED_IMAGE_TYPE:
        return f"{topic}/compressed"
    if topics.get(topic) == COMPRESSED_IMAGE_TYPE:
        return topic
    require_topic(bag, topic, IMAGE_TYPE)
    return topic


def colour_image_rgb(msgtype: str, msg):
    """An H x W x 3 uint8 RGB array of a deserialized Image or CompressedImage (ImageConversionError if it
    cannot be decoded)."""
    return compressed_to_rgb(msg) if msgtype == COMPRESSED_IMAGE_TYPE else image_to_rgb(msg)


def _header(typestore: Typestore, stamp_ns: int, frame_id: str):
    types = typestore.types
    return types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](*ns_to_sec_nanosec(stamp_ns)),
        frame_id=frame_id,
    )


def compressed_image_message(typestore: Typestore, stamp_ns: int, frame_id: str, stream: bytes, fmt: str):
    """A rosbags sensor_msgs/CompressedImage of an encoded stream with its ``format`` string."""
    return typestore.types[COMPRESSED_IMAGE_TYPE](
        header=_header(typestore, stamp_ns, frame_id), format=fmt, data=np.frombuffer(stream, np.uint8)
    )


def image_message(typestore: Typestore, stamp_ns: int, frame_id: str, pixels: np.ndarray, encoding: str):
    """A rosbags sensor_msgs/Image of a uint8 (H x W [x C]) or uint16 (H x W) array, little-endian, unpadded."""
    types = typestore.types
    pixels = np.ascontiguousarray(pixels, dtype="<u2" if pixels.dtype == np.uint16 else np.uint8)
    height, width = pixels.shape[:2]
    return types[IMAGE_TYPE](
        header=_header(typestore, stamp_ns, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=pixels.strides[0],
        data=pixels.view(np.uint8).reshape(-1),
    )
