"""A session's tracking state as plain arrays + a JSON-able dict, and its atomic storage on disk.

``Session.state()`` gives a :class:`SessionState`; ``Session.from_state(network, state)`` rebuilds
a session whose next frame comes out exactly as the original's would have. On disk a state is
two files in one directory: ``session-<token>.npz`` (the arrays, read back with
``allow_pickle=False``) and ``session.json`` (the dict, naming its npz file and that file's
SHA-256). ``session.json`` is the commit point: it is replaced atomically (temp file, fsync,
``os.replace``, fsync of the directory) only after its npz is on disk, and the npz of the
previous state is deleted only after that, so a kill at any moment leaves either the previous
or the new state, never a mix. No pickle anywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vos_ros.engine.errors import VosError
from vos_ros.engine.objects import MAX_OBJECT_ID

STATE_FORMAT = "vos_ros.session_state"
STATE_VERSION = 1
META_FILE = "session.json"
ARRAYS_PREFIX = "session-"
TEMP_SUFFIX = ".tmp"
BAD_SUFFIX = ".bad"
TENSOR_FIELDS = ("key", "instance", "skip", "hidden")

_identities: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class StateError(VosError, ValueError):
    """A stored state cannot be used: corrupt, of another format version, or written by another
    model/config/scale than the one loading it. The message names the problem."""


@dataclass
class SessionState:
    """Everything a session needs to go on: ``meta`` (JSON-able) and ``arrays`` (numpy, by name)."""

    meta: dict
    arrays: dict[str, np.ndarray]

    @property
    def object_ids(self) -> list[int]:
        """The ids of the objects in the state, ascending."""
        return sorted(o["id"] for o in self.meta["objects"])

    def describe(self) -> str:
        """One line for a log: objects with labels and ages, anchors, frame size, network."""
        objects = ", ".join(
            f"{o['id']}"
            + (f" {o['label']!r}" if o["label"] else "")
            + f" (age {self.meta['frame_index'] - o['added']})"
            for o in sorted(self.meta["objects"], key=lambda o: o["id"])
        )
        height, width = self.meta["frame_size"]
        return (
            f"objects [{objects}] on {width}x{height} frames, {len(self.meta['anchors'])} anchor(s), "
            f"config {self.meta['network']['config']!r}, saved {time.ctime(self.meta['saved_at'])}"
        )


def network_identity(network) -> dict:
    """What a state is only valid for: the config name, its hyper-parameters and a SHA-256 of the weights.

    Computed once per network object (networks are read-only once built)."""
    cached = _identities.get(network)
    if cached is None:
        digest = hashlib.sha256()
        for name, tensor in sorted(network.state_dict().items()):
            digest.update(name.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        cached = {
            "config": network.config.name,
            "config_fields": dataclasses.asdict(network.config),
            "weights_sha256": digest.hexdigest(),
        }
        _identities[network] = cached
    return cached


def check_identity(state: SessionState, network, short_side: int) -> None:
    """Raise StateError unless ``state`` was written by this network at this ``short_side``."""
    saved = state.meta.get("network")
    if not isinstance(saved, dict):
        raise StateError(f"the state does not say which network wrote it (network {saved!r})")
    mine = network_identity(network)
    if saved.get("config") != mine["config"]:
        raise StateError(f"the state was written by config {saved.get('config')!r}, this network is {mine['config']!r}")
    if saved.get("config_fields") != mine["config_fields"]:
        raise StateError(f"the state was written by another version of config {mine['config']!r}")
    if saved.get("weights_sha256") != mine["weights_sha256"]:
        raise StateError(
            f"the state was written with other weights (sha256 {str(saved.get('weights_sha256'))[:12]}..., "
            f"these are {mine['weights_sha256'][:12]}...)"
        )
    if state.meta["short_side"] != short_side:
        raise StateError(
            f"the state was written at short_side {state.meta['short_side']}, this session uses {short_side}"
        )


def tensor_to_array(tensor: torch.Tensor) -> np.ndarray:
    """A CPU numpy copy (bfloat16, which numpy lacks, as float32)."""
    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.cpu().numpy().copy()


def validate(state: SessionState) -> None:
    """Raise StateError unless ``state`` has the format, fields and array shapes a session needs."""
    meta, arrays = state.meta, state.arrays
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise StateError(f"not a {STATE_FORMAT} (format {meta.get('format') if isinstance(meta, dict) else meta!r})")
    if meta.get("version") != STATE_VERSION:
        raise StateError(f"state format version {meta.get('version')!r}, this code reads version {STATE_VERSION}")
    try:
        objects = meta["objects"]
        count = len(objects) + 1
        ids = [int(o["id"]) for o in objects]
        for o in objects:
            str(o["label"]), int(o["added"])
        int(meta["frame_index"]), int(meta["short_side"])
        height, width = (int(v) for v in meta["frame_size"])
        references = [*meta["anchors"], *([meta["previous"]] if meta["previous"] is not None else [])]
        if len(ids) != len(set(ids)) or not meta["anchors"]:
            raise StateError("the state has repeated object ids or no anchor")
        if any(not 1 <= i <= MAX_OBJECT_ID for i in ids):
            raise StateError(f"object ids must be in 1..{MAX_OBJECT_ID}, the state has {ids}")
        for ref in references:
            name = ref["name"]
            if not isinstance(ref["foreground_only"], bool):
                raise StateError(f"reference {name}: foreground_only is {ref['foreground_only']!r}, not true or false")
            probs = arrays[f"{name}.probs"]
            key = arrays[f"{name}.key"]
            stored = [arrays[f"{name}.{f}"] for f in ("probs", *TENSOR_FIELDS) if f"{name}.{f}" in arrays]
            if any(not np.issubdtype(a.dtype, np.floating) for a in stored):
                raise StateError(f"reference {name}: its arrays must hold floats, not {[str(a.dtype) for a in stored]}")
            if probs.ndim != 3 or probs.shape[0] != count or key.ndim != 3 or key.shape[1:] != probs.shape[1:]:
                raise StateError(
                    f"reference {name}: probs {probs.shape} and key {key.shape} do not fit {count - 1} objects"
                )
            for field in TENSOR_FIELDS[1:]:
                if ref[field] not in (None, "key") and f"{name}.{field}" not in arrays:
                    raise StateError(f"reference {name} lacks its {field}")
        last = arrays["last_labels"]
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, StateError):
            raise
        raise StateError(f"incomplete state: {type(error).__name__} {error}") from None
    if last.shape != (height, width) or last.dtype != np.uint16:
        raise StateError(f"last labels {last.shape} {last.dtype} do not fit frame size {height}x{width}")


class StateStore:
    """One session state in a directory: ``save`` (atomic), ``load``, ``clear``, ``move_aside``."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).expanduser()

    @property
    def meta_path(self) -> Path:
        return self.directory / META_FILE

    def exists(self) -> bool:
        return self.meta_path.exists()

    def save(self, state: SessionState) -> Path:
        """Write ``state`` atomically, replacing the previous one; returns the path of the JSON file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._remove_temporaries()
        token = f"{time.time_ns():x}-{os.getpid()}"
        arrays_path = self.directory / f"{ARRAYS_PREFIX}{token}.npz"
        temp_arrays = arrays_path.with_name(arrays_path.name + TEMP_SUFFIX)
        with open(temp_arrays, "wb") as handle:
            np.savez(handle, **state.arrays)
            handle.flush()
            os.fsync(handle.fileno())
        digest = _sha256(temp_arrays)
        os.replace(temp_arrays, arrays_path)
        meta = {**state.meta, "arrays_file": arrays_path.name, "arrays_sha256": digest}
        temp_meta = self.meta_path.with_name(META_FILE + TEMP_SUFFIX)
        with open(temp_meta, "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_meta, self.meta_path)  # the commit point
        _fsync_directory(self.directory)
        for stale in self.directory.glob(f"{ARRAYS_PREFIX}*.npz"):
            if stale.name != arrays_path.name:
                stale.unlink(missing_ok=True)
        return self.meta_path

    def load(self) -> SessionState | None:
        """The stored state (None when there is none); StateError when it is corrupt or incomplete."""
        try:
            text = self.meta_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise StateError(f"cannot read {self.meta_path}: {error}") from None
        try:
            meta = json.loads(text)
            arrays_path = self.directory / Path(meta["arrays_file"]).name
            expected = meta["arrays_sha256"]
        except (ValueError, KeyError, TypeError) as error:
            raise StateError(f"{self.meta_path} is not a session state: {type(error).__name__} {error}") from None
        try:
            if _sha256(arrays_path) != expected:
                raise StateError(f"{arrays_path.name} does not match the checksum in {META_FILE} (corrupt)")
            with np.load(arrays_path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise StateError(f"cannot read {arrays_path}: {type(error).__name__} {error}") from None
        state = SessionState(meta, arrays)
        validate(state)
        return state

    def clear(self) -> None:
        """Forget the stored state (the JSON first, so that a kill half-way leaves no state)."""
        self.meta_path.unlink(missing_ok=True)
        for path in self.directory.glob(f"{ARRAYS_PREFIX}*.npz"):
            path.unlink(missing_ok=True)
        self._remove_temporaries()

    def move_aside(self) -> list[Path]:
        """Rename the state's files with a ``.bad-<time>`` suffix (never deleted); returns the new paths."""
        suffix = f"{BAD_SUFFIX}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 1_000_000_000:09d}"
        moved = []
        for path in [self.meta_path, *sorted(self.directory.glob(f"{ARRAYS_PREFIX}*.npz"))]:
            if path.exists():
                target = path.with_name(path.name + suffix)
                os.replace(path, target)
                moved.append(target)
        if moved:
            _fsync_directory(self.directory)
        return moved

    def _remove_temporaries(self) -> None:
        if self.directory.is_dir():
            for path in self.directory.glob(f"*{TEMP_SUFFIX}"):
                path.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
