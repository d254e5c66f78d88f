"""Reading DAVIS-layout folders: splits, lazy frames, 2016 binary masks, 2017 ids, bad layouts."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vos_ros.eval.davis import (
    DavisDataset,
    DavisError,
    read_label_png,
    write_label_png,
    write_sequence,
)
from vos_ros.overlay import davis_palette

H, W = 24, 32
SHARED_DAVIS = Path(__file__).resolve().parents[4] / "shared" / "data" / "davis2016"  # ../shared beside the repo


def clip(num_frames=4, ids=(1, 2)):
    """Frames with a red left half (to check channel order) and one square per object."""
    frames = np.zeros((num_frames, H, W, 3), np.uint8)
    frames[:, :, : W // 2, 0] = 220
    frames[:, :, W // 2 :, 2] = 180
    labels = np.zeros((num_frames, H, W), np.uint16)
    for t in range(num_frames):
        for k, object_id in enumerate(ids):
            labels[t, 2 + t : 8 + t, 2 + 10 * k : 8 + 10 * k] = object_id
    return frames, labels


def write_splits(root, **splits):
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    for name, sequences in splits.items():
        (root / "ImageSets" / f"{name}.txt").write_text("\n".join(sequences) + "\n")


def save_png(path, values, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values, mode=mode).save(path)


def test_written_sequence_reads_back(tmp_path):
    frames, labels = clip()
    seq = write_sequence(tmp_path, "cars", frames, labels)
    assert seq.name == "cars" and len(seq) == 4
    assert seq.object_ids == [1, 2]
    assert not seq.binary
    read = list(seq.frames())
    assert len(read) == 4
    for t, (image, label_map) in enumerate(read):
        assert image.dtype == np.uint8 and image.shape == (H, W, 3)
        assert abs(int(image[5, 5, 0]) - 220) < 8 and image[5, 5, 2] < 8  # RGB, not BGR
        assert label_map.dtype == np.uint16
        np.testing.assert_array_equal(label_map, labels[t])


def test_frames_are_read_lazily(tmp_path):
    frames, labels = clip()
    seq = write_sequence(tmp_path, "cars", frames, labels)
    (tmp_path / "JPEGImages" / "cars" / "00003.jpg").write_bytes(b"not a jpeg")
    iterator = seq.frames()
    next(iterator)  # the broken last frame is not touched yet
    with pytest.raises(DavisError, match="cannot read image"):
        list(iterator)


def test_split_by_name_path_and_default(tmp_path):
    for name in ("a", "b", "c"):
        write_sequence(tmp_path, name, *clip())
    dataset = DavisDataset(tmp_path)
    write_splits(tmp_path, val=["a", "b"])
    assert dataset.default_split() == "val"
    assert dataset.split("val") == ["a", "b"]
    write_splits(tmp_path, dev=["c", "", "# held out", "a  # comment", "c"])
    assert dataset.default_split() == "dev"
    assert dataset.split("dev") == ["c", "a"]
    custom = tmp_path / "mine.txt"
    custom.write_text("b\n")
    assert dataset.split(str(custom)) == ["b"]
    with pytest.raises(DavisError, match="neither a file nor"):
        dataset.split("nope")
    (tmp_path / "ImageSets" / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(DavisError, match="lists no sequences"):
        dataset.split("empty")


def test_davis2016_binary_masks_become_object_one(tmp_path):
    frames, labels = clip(ids=(1,))
    write_sequence(tmp_path, "bear", frames, labels)
    for t in range(len(frames)):
        save_png(tmp_path / "Annotations" / "bear" / f"{t:05d}.png", (labels[t] * 255).astype(np.uint8), "L")
    seq = DavisDataset(tmp_path).sequence("bear")
    assert seq.binary
    assert seq.object_ids == [1]
    np.testing.assert_array_equal(seq.annotation(2), labels[2])


def test_davis2017_ids_stay_and_void_is_background(tmp_path):
    frames, labels = clip(ids=(1, 3))
    write_sequence(tmp_path, "pigs", frames, labels)
    with_void = labels[0].copy()
    with_void[20:, 20:] = 255
    write_label_png(tmp_path / "Annotations" / "pigs" / "00000.png", with_void)
    seq = DavisDataset(tmp_path).sequence("pigs")
    assert not seq.binary
    assert seq.object_ids == [1, 3]
    np.testing.assert_array_equal(seq.annotation(0), labels[0])


def test_official_2017_and_2016_layouts(tmp_path):
    frames, labels = clip()
    flat = tmp_path / "flat"
    write_sequence(flat, "dogs", frames, labels)
    official = tmp_path / "official"
    (official / "JPEGImages").mkdir(parents=True)
    (official / "Annotations").mkdir(parents=True)
    (flat / "JPEGImages").rename(official / "JPEGImages" / "480p")
    (flat / "Annotations").rename(official / "Annotations" / "480p")
    (official / "ImageSets" / "2017").mkdir(parents=True)
    (official / "ImageSets" / "2017" / "val.txt").write_text("dogs\n")
    (official / "ImageSets" / "480p").mkdir(parents=True)
    (official / "ImageSets" / "480p" / "train.txt").write_text(
        "/JPEGImages/480p/dogs/00000.jpg /Annotations/480p/dogs/00000.png\n"
        "/JPEGImages/480p/dogs/00001.jpg /Annotations/480p/dogs/00001.png\n"
    )
    dataset = DavisDataset(official)
    assert dataset.split("val") == ["dogs"]
    assert dataset.split("train") == ["dogs"]
    np.testing.assert_array_equal(dataset.sequence("dogs").annotation(1), labels[1])


def test_bad_layouts_raise_clear_errors(tmp_path):
    with pytest.raises(DavisError, match="does not exist"):
        DavisDataset(tmp_path / "missing")
    (tmp_path / "JPEGImages").mkdir()
    with pytest.raises(DavisError, match="needs JPEGImages/ and Annotations/"):
        DavisDataset(tmp_path)
    frames, labels = clip()
    write_sequence(tmp_path, "s", frames, labels)
    dataset = DavisDataset(tmp_path)
    with pytest.raises(DavisError, match="no frame folder"):
        dataset.sequence("unknown")
    (tmp_path / "Annotations" / "s" / "00002.png").unlink()
    with pytest.raises(DavisError, match=r"without annotation.*00002\.png"):
        dataset.sequence("s")


def test_empty_first_annotation_is_rejected(tmp_path):
    frames, labels = clip()
    labels[0] = 0
    with pytest.raises(DavisError, match="has no object"):
        write_sequence(tmp_path, "s", frames, labels)


def test_colour_annotation_and_size_mismatch_are_rejected(tmp_path):
    frames, labels = clip()
    seq = write_sequence(tmp_path, "s", frames, labels)
    save_png(seq.annotation_paths[1], np.zeros((H, W, 3), np.uint8), "RGB")
    with pytest.raises(DavisError, match="not an indexed or grayscale"):
        seq.annotation(1)
    write_label_png(seq.annotation_paths[1], np.ones((H + 2, W), np.uint16))
    with pytest.raises(DavisError, match="differ in size"):
        list(seq.frames())


def test_label_png_uses_davis_palette_and_round_trips(tmp_path):
    label_map = np.array([[0, 1, 2], [3, 255, 1]], np.uint16)
    path = tmp_path / "m.png"
    write_label_png(path, label_map)
    with Image.open(path) as image:
        assert image.mode == "P"
        palette = image.getpalette()
    assert palette[3:6] == [128, 0, 0] and palette[6:9] == [0, 128, 0] and palette[9:12] == [128, 128, 0]
    assert palette[:768] == davis_palette()
    np.testing.assert_array_equal(read_label_png(path), label_map)
    wide = np.array([[0, 300], [70000 % 65536, 1]], np.uint16)
    write_label_png(path, wide)
    np.testing.assert_array_equal(read_label_png(path), wide)


@pytest.mark.skipif(not SHARED_DAVIS.is_dir(), reason="shared DAVIS 2016 copy not present")
def test_shared_davis2016_copy():
    dataset = DavisDataset(SHARED_DAVIS)
    assert dataset.default_split() == "dev"
    assert dataset.split("dev") == ["bus", "dance-jump", "kite-walk", "mallard-water", "scooter-gray"]
    seq = dataset.sequence("bus")
    assert seq.object_ids == [1] and not seq.binary
    image, label_map = next(seq.frames())
    assert image.shape == (480, 854, 3) and label_map.shape == (480, 854)
    assert set(np.unique(label_map).tolist()) == {0, 1}
