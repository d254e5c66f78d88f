"""What keeps the node's tracking going through faults (no rclpy): its state on disk across
restarts, and the watch over the image stream for time jumps, frame_id and resolution changes.

The node calls these at a few points (start, masks, removals, reset, each image, each frame) and
logs through the callables it passes in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from vos_ros.engine.session import Session
from vos_ros.engine.state import SessionState, StateError, StateStore
from vos_ros.ros.stamp_pairing import JumpDetector, TimeJump

Log = Callable[[str], None]

RESIZE = "resize"
RESET = "reset"
RESOLUTION_CHANGE_CHOICES = (RESIZE, RESET)


class PersistentState:
    """The node's tracking state in ``directory`` (every method does nothing when it is empty).

    Saved when the objects or anchors change (mask given, objects removed), never per frame;
    cleared by a reset. A state that cannot be used is renamed aside (never deleted) with a warning.
    """

    def __init__(self, directory: str, info: Log, warning: Log):
        self.store = StateStore(directory) if directory else None
        self._info = info
        self._warning = warning

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def restore(self, make_session: Callable[[SessionState], Session]) -> Session | None:
        """The session continued from the stored state (``make_session`` builds it), or None."""
        if self.store is None:
            return None
        try:
            state = self.store.load()
            if state is None:
                self._info(f"state_dir {self.store.directory}: no saved state, starting empty")
                return None
            session = make_session(state)
            restored = state.describe()
        except (StateError, ValueError, TypeError, KeyError, IndexError, RuntimeError) as error:
            # StateError names what is wrong; anything else that a state passing validation still
            # trips in the engine is refused the same way: the node starts, empty
            reason = str(error) if isinstance(error, StateError) else f"{type(error).__name__}: {error}"
            moved = self._move_aside()
            self._warning(
                f"state_dir {self.store.directory}: refusing the saved state ({reason}); "
                f"kept aside as {moved}; starting with no objects"
            )
            return None
        self._info(f"state_dir {self.store.directory}: restored {restored}")
        return session

    def save(self, session: Session) -> None:
        """Store the session's state (a failure to write is logged, never raised)."""
        if self.store is None:
            return
        try:
            if session.initialized and session.object_ids:
                self.store.save(session.state())
            else:
                self.store.clear()
        except OSError as error:
            self._warning(f"state_dir {self.store.directory}: cannot save the tracking state: {error}")

    def clear(self) -> None:
        """Forget the stored state (after a reset)."""
        if self.store is None:
            return
        try:
            self.store.clear()
        except OSError as error:
            self._warning(f"state_dir {self.store.directory}: cannot clear the tracking state: {error}")

    def _move_aside(self) -> list[str]:
        try:
            return [path.name for path in self.store.move_aside()]
        except OSError as error:
            return [f"(could not rename: {error})"]


@dataclass(frozen=True)
class StreamEvent:
    """What changed with one image: a time jump, and/or a frame_id not seen before."""

    jump: TimeJump | None = None
    new_frame_id: tuple[str, str] | None = None  # (previous, new)


class StreamWatch:
    """Watches the image stamps and frame ids; counts time epochs (thread-safe).

    A time jump (stamps backwards, or forwards by more than ``max_forward_s``; 0 switches the
    forward check off) starts a new epoch: frames of different epochs are never paired.
    """

    def __init__(self, max_forward_s: float):
        self._jumps = JumpDetector(round(max_forward_s * 1e9))
        self._lock = threading.Lock()
        self._epoch = 0
        self._frame_id: str | None = None
        self._frame_ids_seen: set[str] = set()
        self.jumps = 0

    @property
    def epoch(self) -> int:
        with self._lock:
            return self._epoch

    def set_max_forward(self, seconds: float) -> None:
        self._jumps.max_forward_ns = round(seconds * 1e9)

    def time_jumped(self) -> None:
        """The node's clock jumped (``/clock`` went backwards): a new epoch; the next stamp starts afresh."""
        with self._lock:
            self._epoch += 1
            self.jumps += 1
        self._jumps.forget()

    def observe(self, stamp_ns: int, frame_id: str) -> StreamEvent:
        """Take one image's stamp and frame_id; what changed (a frame_id change is reported once per id)."""
        jump = self._jumps.check(stamp_ns)
        with self._lock:
            if jump is not None:
                self._epoch += 1
                self.jumps += 1
            new_frame_id = None
            if self._frame_id is not None and frame_id != self._frame_id and frame_id not in self._frame_ids_seen:
                new_frame_id = (self._frame_id, frame_id)
            self._frame_ids_seen.add(frame_id)
            self._frame_id = frame_id
        return StreamEvent(jump, new_frame_id)


def resolution_change(session: Session, size: tuple[int, int], policy: str, warning: Log) -> bool:
    """Handle a frame of another size than the session's (under the session lock); True when the
    session was reset (``policy`` RESET), False when the objects are carried over (RESIZE, the
    session adapts its references in ``step``)."""
    old = session.frame_size
    if old is None or old == size:
        return False
    change = f"{old[1]}x{old[0]} -> {size[1]}x{size[0]}"
    if policy == RESET:
        forgotten = session.object_ids
        session.reset()
        warning(f"the image size changed ({change}): forgot objects {forgotten} (on_resolution_change=reset)")
        return True
    warning(f"the image size changed ({change}): carrying objects {session.object_ids} over to the new size")
    return False
