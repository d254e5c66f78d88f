"""Prompt simulation and the prompt head's training loop (on made-up cached features)."""

import json

import numpy as np
import pytest
import torch
from static_photos import write_static_folder

from vos_ros.cli.train_prompts import main as train_prompts_main
from vos_ros.model.backbone import Backbone
from vos_ros.model.factory import build_network, save_checkpoint
from vos_ros.model.prompt import backbone_digest, load_prompt_backbone, load_prompt_head
from vos_ros.train.prompts import (
    IGNORE,
    CachedImage,
    build_feature_cache,
    jitter_box,
    mask_box,
    sample_objects,
    train_prompt_head,
)


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


def toy_cache(count: int = 3) -> list[CachedImage]:
    """Made-up cached features of 64x96 images with one box-shaped object, visible at stride 4 and 8."""
    rng = np.random.default_rng(0)
    cache = []
    for index in range(count):
        mask = np.zeros((64, 96), bool)
        y, x = rng.integers(5, 30), rng.integers(5, 50)
        mask[y : y + 25, x : x + 35] = True
        features = {4: torch.zeros(1, 24, 16, 24), 8: torch.zeros(1, 40, 8, 12), 16: torch.zeros(1, 112, 4, 6)}
        features[4][:, :, y // 4 : (y + 25) // 4, x // 4 : (x + 35) // 4] = 1.0  # the object is visible in the features
        features[8][:, :, y // 8 : (y + 25) // 8, x // 8 : (x + 35) // 8] = 1.0
        cache.append(CachedImage({k: v.half() for k, v in features.items()}, mask, f"toy/{index}"))
    return cache


def test_training_lowers_the_loss_and_writes_strict_small_weights(tmp_path):
    torch.manual_seed(0)
    cache = toy_cache()
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


def test_tuned_backbone_blocks_train_and_are_saved_with_the_head(tmp_path):
    torch.manual_seed(0)
    backbone = Backbone(pretrained=False).eval()
    before = {key: value.clone() for key, value in backbone.state_dict().items()}
    train_prompt_head(
        toy_cache(), tmp_path, steps=3, batch_size=1, backbone=backbone, tune_backbone_blocks=2, log=lambda _: None
    )
    after = load_prompt_backbone(tmp_path / "prompt.pt").state_dict()
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    last = backbone.num_blocks - 1
    assert changed, "the tuned blocks did not train"
    assert all(key.startswith((f"_blocks.{last}.", f"_blocks.{last - 1}.")) for key in changed), sorted(changed)
    with pytest.raises(ValueError, match="tune_backbone_blocks"):
        train_prompt_head(toy_cache(1), tmp_path, steps=1, backbone=backbone, tune_backbone_blocks=7)


def test_a_feature_cache_is_read_back_only_with_the_backbone_that_computed_it(tmp_path):
    static = write_static_folder(tmp_path / "static")
    torch.manual_seed(0)
    one, other = Backbone(pretrained=False), Backbone(pretrained=False)
    quiet = {"static_root": static, "davis_root": None, "davis_split": "fit", "log": lambda _: None}
    items = build_feature_cache(path=tmp_path / "cache.pt", backbone=one, **quiet)
    assert len(items) == 5
    again = build_feature_cache(path=tmp_path / "cache.pt", backbone=one, **quiet)
    assert torch.equal(again[0].features[8], items[0].features[8])
    with pytest.raises(ValueError, match="another backbone"):
        build_feature_cache(path=tmp_path / "cache.pt", backbone=other, **quiet)


def test_train_prompts_cli_tunes_the_last_block_and_refuses_a_cache_of_another_backbone(tmp_path, capsys):
    static = write_static_folder(tmp_path / "static")
    common = ["--static", str(static), "--cache", str(tmp_path / "cache.pt"), "--batch-size", "1", "--threads", "1"]
    out = tmp_path / "tuned"
    assert train_prompts_main([*common, "--out", str(out), "--steps", "2", "--tune-backbone-blocks", "1"]) == 0
    full = build_network("full", device="cpu").backbone.state_dict()
    tuned = load_prompt_backbone(out / "prompt.pt").state_dict()
    changed = {key for key in full if not torch.equal(full[key], tuned[key])}
    last = len(Backbone(pretrained=False)._blocks) - 1
    assert changed and all(key.startswith(f"_blocks.{last}.") for key in changed)
    # Continuing from the tuned head reads its backbone, whose stride-16 features the cache does not hold.
    assert train_prompts_main([*common, "--out", str(tmp_path / "again"), "--init", str(out / "prompt.pt")]) == 2
    assert "another backbone" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_prompts_main([*common, "--out", str(tmp_path / "x"), "--tune-backbone-blocks", "7"])


def test_train_prompts_cli_reads_the_backbone_of_given_tracking_weights(tmp_path, capsys):
    static = write_static_folder(tmp_path / "static")
    torch.manual_seed(3)
    network = build_network("full", device="cpu")
    with torch.no_grad():
        next(network.backbone._blocks[-1].parameters()).add_(1.0)  # tracking weights of another run
    weights = tmp_path / "full_other.pt"
    save_checkpoint(network, weights)
    common = ["--static", str(static), "--batch-size", "1", "--threads", "1", "--steps", "1"]
    out = tmp_path / "head"
    args = [*common, "--cache", str(tmp_path / "cache.pt"), "--out", str(out), "--backbone-of", str(weights)]
    assert train_prompts_main(args) == 0
    assert backbone_digest(load_prompt_backbone(out / "prompt.pt")) == backbone_digest(network.backbone)
    # A head that stores its backbone is not trained on another one, nor on a 'fast' network's.
    again = [*common, "--cache", str(tmp_path / "c2.pt"), "--out", str(tmp_path / "x")]
    assert train_prompts_main([*again, "--init", str(out / "prompt.pt"), "--backbone-of", str(weights)]) == 2
    assert "stores the backbone" in capsys.readouterr().err
    save_checkpoint(build_network("fast", device="cpu"), tmp_path / "fast.pt")
    assert train_prompts_main([*again, "--backbone-of", str(tmp_path / "fast.pt")]) == 2
    assert "not 'full'" in capsys.readouterr().err
