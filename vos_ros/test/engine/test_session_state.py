"""Session state: round trip through disk gives the same next frames; bad states are refused and
kept aside; a kill between writing and renaming leaves the previous state intact."""

import json
import os

import numpy as np
import pytest

from vos_ros.engine import NotInitializedError
from vos_ros.engine import state as state_module
from vos_ros.engine.session import Session
from vos_ros.engine.state import META_FILE, StateError, StateStore
from vos_ros.synthetic import make_clip

SIZE = (120, 160)
SHORT_SIDE = 192


@pytest.fixture(scope="module")
def clip():
    return make_clip(num_objects=3, num_frames=14, size=SIZE, seed=5)


def tracked_session(network, clip, steps: int = 4) -> Session:
    """Objects 1 and 2 from frame 0, object 3 appended at frame 2, object 2 removed, a few steps."""
    session = Session(network, short_side=SHORT_SIDE)
    session.set_mask(clip.frames[0], np.where(clip.labels[0] == 3, 0, clip.labels[0]), labels=["disc", "box"])
    session.step(clip.frames[1])
    session.set_mask(clip.frames[2], np.where(clip.labels[2] == 3, 3, 0), labels={3: "third"}, append=True)
    for t in range(3, 3 + steps):
        session.step(clip.frames[t])
    session.remove([2])
    return session


def assert_same_results(a, b):
    np.testing.assert_array_equal(a.label_map, b.label_map)
    assert a.frame_index == b.frame_index
    assert [(o.id, o.label, o.area, o.bbox, o.score, o.age) for o in a.objects] == [
        (o.id, o.label, o.area, o.bbox, o.score, o.age) for o in b.objects
    ]


@pytest.mark.parametrize("network_name", ["matching_network", "fast_network"])
def test_round_trip_through_disk_gives_identical_next_frames(request, clip, tmp_path, network_name):
    network = request.getfixturevalue(network_name)
    original = tracked_session(network, clip)
    store = StateStore(tmp_path / "state")
    store.save(original.state())
    assert sorted(p.name for p in (tmp_path / "state").iterdir())[-1] == META_FILE

    loaded = store.load()
    assert loaded.object_ids == [1, 3]
    restored = Session.from_state(network, loaded, short_side=SHORT_SIDE)
    assert restored.object_ids == [1, 3] and restored.frame_size == SIZE
    for t in range(8, 11):
        expected, got = original.step(clip.frames[t]), restored.step(clip.frames[t])
        assert_same_results(expected, got)
        assert [o.label for o in got.objects] == ["disc", "third"]
    # the restored session takes further commands as the original does
    for session in (original, restored):
        session.set_mask(clip.frames[11], np.where(clip.labels[11] == 2, 2, 0), append=True)
    assert_same_results(original.step(clip.frames[12]), restored.step(clip.frames[12]))


def test_state_is_plain_arrays_and_json(matching_network, clip):
    state = tracked_session(matching_network, clip, steps=1).state()
    json.dumps(state.meta)
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in state.arrays.values())
    assert state.meta["network"]["config"] == "matching"
    assert [o["label"] for o in state.meta["objects"]] == ["disc", "third"]
    assert state.meta["frame_size"] == list(SIZE)
    with pytest.raises(NotInitializedError):
        Session(matching_network).state()


def test_a_state_of_another_config_or_scale_is_refused(matching_network, fast_network, clip):
    state = tracked_session(matching_network, clip, steps=1).state()
    with pytest.raises(StateError, match="config 'matching'"):
        Session.from_state(fast_network, state, short_side=SHORT_SIDE)
    with pytest.raises(StateError, match="short_side 192"):
        Session.from_state(matching_network, state, short_side=256)
    state.meta["network"] = {**state.meta["network"], "weights_sha256": "0" * 64}
    with pytest.raises(StateError, match="other weights"):
        Session.from_state(matching_network, state, short_side=SHORT_SIDE)


def test_a_state_with_more_objects_than_allowed_is_refused(matching_network, clip):
    state = tracked_session(matching_network, clip, steps=1).state()
    with pytest.raises(StateError, match="max_objects is 1"):
        Session.from_state(matching_network, state, short_side=SHORT_SIDE, max_objects=1)


def files(directory):
    return sorted(p.name for p in directory.iterdir())


def test_a_corrupt_state_is_refused_and_kept_aside(matching_network, clip, tmp_path):
    store = StateStore(tmp_path)
    store.save(tracked_session(matching_network, clip, steps=1).state())
    arrays = next(tmp_path.glob("session-*.npz"))
    arrays.write_bytes(arrays.read_bytes()[: arrays.stat().st_size // 2])
    with pytest.raises(StateError, match="checksum"):
        store.load()
    moved = store.move_aside()
    assert len(moved) == 2 and all(p.exists() and ".bad-" in p.name for p in moved)
    assert store.load() is None and not store.exists()

    (tmp_path / META_FILE).write_text("{not json")
    with pytest.raises(StateError, match="not a session state"):
        store.load()


def test_arrays_that_would_need_pickle_are_refused(tmp_path):
    arrays = tmp_path / "session-x.npz"
    np.savez(arrays, last_labels=np.array([{"a": 1}], dtype=object))
    meta = {"arrays_file": arrays.name, "arrays_sha256": state_module._sha256(arrays)}
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(StateError, match="cannot read"):
        StateStore(tmp_path).load()


def test_a_kill_between_write_and_rename_leaves_the_previous_state(matching_network, clip, tmp_path, monkeypatch):
    store = StateStore(tmp_path)
    first = tracked_session(matching_network, clip, steps=1)
    store.save(first.state())
    before = files(tmp_path)

    second = Session(matching_network, short_side=SHORT_SIDE)
    second.set_mask(clip.frames[5], np.where(clip.labels[5] == 2, 2, 0), labels=["other"])
    real_replace = os.replace

    class Killed(BaseException):
        pass

    def replace(src, dst):
        if str(dst).endswith(META_FILE):
            raise Killed  # the process dies after writing the new files, before the commit
        real_replace(src, dst)

    monkeypatch.setattr(state_module.os, "replace", replace)
    with pytest.raises(Killed):
        store.save(second.state())
    monkeypatch.setattr(state_module.os, "replace", real_replace)
    assert len(files(tmp_path)) > len(before), "the new files were written"

    survived = store.load()
    assert survived.object_ids == [1, 3] and [o["label"] for o in survived.meta["objects"]] == ["disc", "third"]
    restored = Session.from_state(matching_network, survived, short_side=SHORT_SIDE)
    assert_same_results(first.step(clip.frames[6]), restored.step(clip.frames[6]))

    store.save(second.state())  # the next save commits and leaves no stray file behind
    assert store.load().object_ids == [2]
    assert len(files(tmp_path)) == 2


def test_clear_forgets_the_state(matching_network, clip, tmp_path):
    store = StateStore(tmp_path / "nested")
    assert store.load() is None
    store.save(tracked_session(matching_network, clip, steps=1).state())
    store.clear()
    assert store.load() is None and files(tmp_path / "nested") == []


def _mutations(state):
    """(name, meta, arrays): one corruption each of a valid state's JSON or arrays."""
    import copy

    meta, arrays = state.meta, state.arrays
    anchor = meta["anchors"][0]["name"]

    def changed(edit):
        new_meta, new_arrays = copy.deepcopy(meta), dict(arrays)
        edit(new_meta, new_arrays)
        return new_meta, new_arrays

    def drop_meta(key):
        return lambda m, a: m.pop(key)

    def set_meta(key, value):
        return lambda m, a: m.__setitem__(key, value)

    optional = ("saved_at", "previous_anchor")  # when it was written; which anchor is the previous frame if none
    cases = {f"no {key}": drop_meta(key) for key in meta if key not in optional}
    cases.update(
        {
            "objects not a list": set_meta("objects", 5),
            "object id not a number": lambda m, a: m["objects"][0].__setitem__("id", "one"),
            "object without label": lambda m, a: m["objects"][0].pop("label"),
            "repeated ids": lambda m, a: m["objects"].append(dict(m["objects"][0])),
            "frame size of one number": set_meta("frame_size", [120]),
            "frame size not numbers": set_meta("frame_size", ["a", "b"]),
            "frame index null": set_meta("frame_index", None),
            "no anchors": set_meta("anchors", []),
            "anchor without name": lambda m, a: m["anchors"][0].pop("name"),
            "anchor not a dict": set_meta("anchors", [3]),
            "unknown previous anchor": lambda m, a: (
                m.__setitem__("previous", None),
                m.__setitem__("previous_anchor", 9),
            ),
            "missing probs": lambda m, a: a.pop(f"{anchor}.probs"),
            "missing key": lambda m, a: a.pop(f"{anchor}.key"),
            "probs for other objects": lambda m, a: a.__setitem__(f"{anchor}.probs", a[f"{anchor}.probs"][:1]),
            "flat probs": lambda m, a: a.__setitem__(f"{anchor}.probs", a[f"{anchor}.probs"].ravel()),
            "key of another size": lambda m, a: a.__setitem__(f"{anchor}.key", a[f"{anchor}.key"][:, :-1]),
            "missing last labels": lambda m, a: a.pop("last_labels"),
            "last labels of another size": lambda m, a: a.__setitem__("last_labels", a["last_labels"][:-1]),
            "last labels as float": lambda m, a: a.__setitem__("last_labels", a["last_labels"].astype(np.float32)),
            "another format": set_meta("format", "something else"),
            "another version": set_meta("version", -1),
            "network not a dict": set_meta("network", "full"),
            "anchor without foreground_only": lambda m, a: m["anchors"][0].pop("foreground_only"),
            "anchor without its instance field": lambda m, a: m["anchors"][0].pop("instance"),
            "object id 0": lambda m, a: m["objects"][0].__setitem__("id", 0),
            "object id negative": lambda m, a: m["objects"][0].__setitem__("id", -4),
            "object id too large": lambda m, a: m["objects"][0].__setitem__("id", 10**6),
            "object added as text": lambda m, a: m["objects"][0].__setitem__("added", "soon"),
            "probs as text": lambda m, a: a.__setitem__(f"{anchor}.probs", a[f"{anchor}.probs"].astype(str)),
        }
    )
    return [(name, *changed(edit)) for name, edit in cases.items()]


def test_every_corruption_of_a_state_is_a_state_error(matching_network, clip):
    from vos_ros.engine.state import SessionState

    state = tracked_session(matching_network, clip, steps=1).state()
    Session.from_state(matching_network, state, short_side=SHORT_SIDE)  # the state itself is good
    failures = []
    for name, meta, arrays in _mutations(state):
        try:
            Session.from_state(matching_network, SessionState(meta=meta, arrays=arrays), short_side=SHORT_SIDE)
            failures.append(f"{name}: accepted")
        except StateError:
            pass
        except Exception as error:  # any other exception is the failure under test
            failures.append(f"{name}: {type(error).__name__} {error}")
    assert not failures, failures
