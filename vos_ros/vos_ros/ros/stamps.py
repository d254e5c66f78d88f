"""The one conversion between ROS time stamps and integer nanoseconds.

Works on any object with ``sec`` and ``nanosec`` (rclpy's builtin_interfaces/Time, rosbags' Time),
so the bag tools and the node share it. Stamps are keys everywhere in vos_ros (frames, masks,
labels, depth pairing), always as integer nanoseconds since the epoch of the clock in use.
"""

from __future__ import annotations

import struct

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp) -> int:
    """A builtin_interfaces/Time (rclpy or rosbags) as integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_sec_nanosec(stamp_ns: int) -> tuple[int, int]:
    """(sec, nanosec) of integer nanoseconds, nanosec in [0, 1e9)."""
    return divmod(int(stamp_ns), NS_PER_S)


def set_stamp(stamp, stamp_ns: int):
    """Write integer nanoseconds into a Time (or anything with ``sec``/``nanosec``); returns it."""
    stamp.sec, stamp.nanosec = ns_to_sec_nanosec(stamp_ns)
    return stamp


def header_stamp_ns(cdr: bytes) -> int:
    """The header stamp (ns) of a serialized (CDR) message whose first field is a std_msgs/Header:
    read without deserializing the message. Raises ValueError when it is too short to hold one."""
    if len(cdr) < 12:
        raise ValueError(f"serialized message of {len(cdr)} bytes is too short to hold a header")
    sec, nanosec = struct.unpack_from("<iI" if cdr[1] & 1 else ">iI", cdr, 4)
    return sec * NS_PER_S + nanosec


def make_header(stamp_ns: int, frame_id: str = ""):
    """A std_msgs/Header stamped ``stamp_ns``."""
    from std_msgs.msg import Header

    header = Header(frame_id=frame_id)
    set_stamp(header.stamp, stamp_ns)
    return header


def format_stamp(stamp_ns: int) -> str:
    """Nanoseconds as seconds with all nine decimals, as log messages show stamps (exact: no float)."""
    sec, nanosec = ns_to_sec_nanosec(stamp_ns)
    if sec < 0:
        return f"{stamp_ns / NS_PER_S:.9f}"
    return f"{sec}.{nanosec:09d}"


def parse_stamp(text: str) -> int:
    """'SEC' or 'SEC.FRACTION' (up to nine decimals, as format_stamp writes) as integer nanoseconds."""
    sec, _, fraction = text.strip().partition(".")
    if not sec.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 9:
        raise ValueError(f"expected a stamp SEC.NSEC, e.g. 1700000000.250000000, got {text!r}")
    return int(sec) * NS_PER_S + int(fraction.ljust(9, "0"))
