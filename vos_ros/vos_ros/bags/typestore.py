"""Message types for reading and writing bags: ROS 2 Jazzy's standard types plus vos_ros_interfaces.

The vos_ros_interfaces definitions are read from their .msg text, found in the ament index
(``AMENT_PREFIX_PATH``, set by env.sh) or, in a source checkout, next to this package.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

INTERFACES_PACKAGE = "vos_ros_interfaces"
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
DIAGNOSTICS_TYPE = "diagnostic_msgs/msg/DiagnosticArray"
TRACKED_OBJECTS_TYPE = f"{INTERFACES_PACKAGE}/msg/TrackedObjectArray"


def interface_msg_dirs() -> list[Path]:
    """Folders that may hold the vos_ros_interfaces .msg files, most specific first."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    dirs = [Path(prefix) / "share" / INTERFACES_PACKAGE / "msg" for prefix in prefixes]
    dirs.append(Path(__file__).resolve().parents[3] / INTERFACES_PACKAGE / "msg")
    return dirs


def interface_definitions() -> dict[str, str]:
    """Message type name -> .msg text for every vos_ros_interfaces message found (empty if none)."""
    for folder in interface_msg_dirs():
        files = sorted(folder.glob("*.msg")) if folder.is_dir() else []
        if files:
            return {f"{INTERFACES_PACKAGE}/msg/{path.stem}": path.read_text() for path in files}
    return {}


@lru_cache(maxsize=1)
def project_typestore() -> Typestore:
    """A typestore with the Jazzy message types and the vos_ros_interfaces messages that were found."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for name, text in interface_definitions().items():
        types.update(get_types_from_msg(text, name))
    if types:
        store.register(types)
    return store
