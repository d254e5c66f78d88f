"""Prompt simulation and the prompt head's training loop (on made-up cached features)."""

import json

import numpy as np
import torch

from vos_ros.model.prompt import load_prompt_head
from vos_ros.train.prompts import IGNORE, CachedImage, jitter_box, mask_box, sample_objects, train_prompt_head


def two_parts():
    mask = np.zeros((96, 128), bool)
    mask[10:50, 10:50] = True
    mask[40:90, 70:120] = True
    mask[2:4, 2:4] = True  # a speck: never scored
    return mask


def test_jittered_boxes_stay_in_the_image_and_near_the_object():
    rng = np.random.default_rng(0)
    box = mask_box(two_parts()[:, 60:])
    for _ in range(200):
        x0, y0, x1, y1 = jitter_box(box, (96, 68), rng)
        assert 0 <= x0 < x1 <= 68 and 0 <= y0 < y1 <= 96
        assert x1 - x0 >= 2 and y1 - y0 >= 2


def test_sampled_targets_follow_the_prompts():
    rng = np.random.default_rng(1)
    mask = two_parts()
    kinds = set()
    for _ in range(200):
        prompts, target = sample_objects(mask, rng)
        ids = sorted(int(v) for v in np.unique(target) if v not in (0, IGNORE))
        assert ids == list(range(1, len(prompts) + 1))
        assert (target[2:4, 2:4] == IGNORE).all() or len(prompts) == 1
        for k, prompt in enumerate(prompts, start=1):
            obj = target == k
            for x, y, positive in prompt.clicks:
                assert obj[int(y), int(x)] == positive or not positive
            if any(not p for _, _, p in prompt.clicks):
                kinds.add("negative")
        if len(prompts) == 1 and (target == 1).sum() == mask[10:, 10:].sum() - 4:
            kinds.add("whole")
        if len(prompts) == 2:
            kinds.add("parts")
    assert {"negative", "parts"} <= kinds


def test_labelled_composites_give_one_object_per_instance():
    labels = np.zeros((64, 64), np.uint8)
    labels[5:30, 5:30] = 1
    labels[30:60, 20:60] = 2
    rng = np.random.default_rng(2)
    for _ in range(50):
        prompts, target = sample_objects(labels, rng)
        for k in range(1, len(prompts) + 1):
            assert np.isin(np.unique(labels[target == k]), [1, 2]).all()
            assert len(np.unique(labels[target == k])) == 1


def test_training_lowers_the_loss_and_writes_strict_small_weights(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cache = []
    for index in range(3):
        mask = np.zeros((64, 96), bool)
        y, x = rng.integers(5, 30), rng.integers(5, 50)
        mask[y : y + 25, x : x + 35] = True
        features = {4: torch.zeros(1, 24, 16, 24), 8: torch.zeros(1, 40, 8, 12), 16: torch.zeros(1, 112, 4, 6)}
        features[4][:, :, y // 4 : (y + 25) // 4, x // 4 : (x + 35) // 4] = 1.0  # the object is visible in the features
        cache.append(CachedImage({k: v.half() for k, v in features.items()}, mask, f"toy/{index}"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only costs synchronisation
    try:
        train_prompt_head(cache, tmp_path, steps=40, batch_size=2, lr=3e-3, seed=0, log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 39
    assert np.mean([r["loss"] for r in records[-2:]]) < records[0]["loss"]
    head = load_prompt_head(tmp_path / "prompt.pt")
    assert sum(p.numel() for p in head.parameters()) < 500_000
    saved = torch.load(tmp_path / "prompt.pt", map_location="cpu", weights_only=True)
    head_bytes = sum(v.numel() * v.element_size() for v in saved["state_dict"].values())
    assert head_bytes < 1_000_000  # the head in fp16; the file also keeps the backbone it was trained on
    assert saved["backbone_state_dict"] and (tmp_path / "prompt.pt").stat().st_size < 4 * 1024 * 1024
