"""The training loop on tiny synthetic clips: the loss falls, resuming is exact, outputs are written."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vos_ros.model import LEARNED_CONFIGS, build_network, get_config
from vos_ros.model.network import Reference
from vos_ros.synthetic import make_clip
from vos_ros.train.clips import ArrayVideo, ClipSpec, make_training_clip
from vos_ros.train.loop import Trainer, TrainSettings, learning_rate, read_log
from vos_ros.train.losses import segmentation_losses, soft_labels
from vos_ros.train.objective import ClipObjective, collate

SPEC = ClipSpec(short_side=96, crop=(64, 96), prediction_probability=0.0, perturb_probability=0.0)


def _videos():
    return [ArrayVideo(c.frames, c.labels) for c in (make_clip(2, 6, (96, 128), seed=s) for s in range(2))]


def _held_out_loss(trainer, batches):
    trainer.objective.eval()
    with torch.no_grad():
        return float(np.mean([float(trainer.objective(**batch)["total"]) for batch in batches]))


def test_a_few_steps_lower_the_loss_on_held_out_clips(tmp_path):
    videos = _videos()
    settings = TrainSettings(config="fast", steps=25, lr=3e-3, warmup=1, checkpoint_every=100)
    trainer = Trainer(videos, tmp_path, settings, SPEC, progress=False)
    batches = [
        collate([make_training_clip(videos, SPEC, np.random.default_rng([99, i]))], torch.device("cpu"))
        for i in range(4)
    ]
    before = _held_out_loss(trainer, batches)
    trainer.run()
    after = _held_out_loss(trainer, batches)
    assert after < 0.8 * before
    records = read_log(tmp_path / "train_log.jsonl")
    assert [r["step"] for r in records] == list(range(1, 26))
    assert {
        "loss_total",
        "loss_fg",
        "loss_instance",
        "loss_fused",
        "loss_jaccard",
        "lr",
        "s_per_step",
        "grad_norm",
    } <= set(records[0])
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000
    loaded = build_network(weights=tmp_path / "weights.pt", device="cpu")
    assert loaded.config.name == "fast"
    for name, value in trainer.network.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_frames_after_the_third_are_segmented_from_the_networks_own_previous_output():
    network = build_network("fast", device="cpu")
    objective = ClipObjective(network).eval()
    spec = ClipSpec(short_side=96, crop=(64, 96), length=4, prediction_probability=0.0, perturb_probability=0.0)
    batch = collate([make_training_clip(_videos(), spec, np.random.default_rng(1))], torch.device("cpu"))
    objects, labels = batch["num_objects"][0], batch["labels"][0]
    with torch.no_grad():
        losses = objective(**batch)
        frames = objective.encode(batch["frames"])
        anchor = Reference(frames[0], soft_labels(labels[0], objects, frames[0].size))
        given = Reference(frames[1], soft_labels(batch["previous"][0], objects, frames[1].size))
        first = network.segment(frames[2], [anchor], given)
        own = F.adaptive_avg_pool2d(first.log_probs.exp()[None], frames[2].size)[0]
        second = network.segment(frames[3], [anchor], Reference(frames[2], own))
        truth = network.segment(
            frames[3], [anchor], Reference(frames[2], soft_labels(labels[2], objects, frames[2].size))
        )
    fused = lambda output, t: segmentation_losses(output, labels[t], objects)["fused"]  # noqa: E731
    assert torch.allclose(losses["fused"], (fused(first, 2) + fused(second, 3)) / 2)
    assert not torch.allclose(losses["fused"], (fused(first, 2) + fused(truth, 3)) / 2)


@pytest.mark.parametrize("weight", [0.0, 2.0])
def test_the_total_adds_the_jaccard_term_at_its_weight(weight):
    network = build_network("fast", device="cpu")
    batch = collate([make_training_clip(_videos(), SPEC, np.random.default_rng(3))], torch.device("cpu"))
    with torch.no_grad():
        losses = ClipObjective(network, jaccard_weight=weight).eval()(**batch)
    assert losses["jaccard"] > 0
    expected = losses["fg"] + losses["instance"] + losses["fused"] + weight * losses["jaccard"]
    assert torch.allclose(losses["total"], expected)


def test_backbone_stays_frozen(tmp_path):
    trainer = Trainer(_videos(), tmp_path, TrainSettings(config="fast", steps=2, warmup=1), SPEC, progress=False)
    backbone = {k: v.clone() for k, v in trainer.network.backbone.state_dict().items()}
    heads = trainer.network.key_head.out.weight.clone()
    trainer.run()
    for name, value in trainer.network.backbone.state_dict().items():
        assert torch.equal(value, backbone[name]), name
    assert not torch.equal(trainer.network.key_head.out.weight, heads)


def test_tuned_backbone_blocks_learn_at_a_tenth_of_the_rate_and_the_rest_stays_frozen(tmp_path):
    settings = TrainSettings(config="fast", steps=2, warmup=1, tune_backbone_blocks=2)
    trainer = Trainer(_videos(), tmp_path, settings, SPEC, progress=False)
    before = {k: v.clone() for k, v in trainer.network.backbone.state_dict().items()}
    trainer.run()
    first_tuned = trainer.network.backbone.num_blocks - 2
    for name, value in trainer.network.backbone.state_dict().items():
        parts = name.split(".")
        tuned = parts[0] == "_blocks" and int(parts[1]) >= first_tuned and "running" not in name
        if tuned and name.endswith("weight"):
            assert not torch.equal(value, before[name]), name
        elif not tuned:
            assert torch.equal(value, before[name]), name
    heads, backbone = trainer.optimizer.param_groups
    assert backbone["lr"] == pytest.approx(0.1 * heads["lr"])
    with pytest.raises(ValueError, match="tuned backbone blocks"):
        Trainer(
            _videos(), tmp_path, TrainSettings(config="fast", steps=1, tune_backbone_blocks=99), SPEC, progress=False
        )


def test_clips_are_drawn_at_the_configs_training_scale(tmp_path):
    for name in LEARNED_CONFIGS:
        trainer = Trainer(_videos(), tmp_path / name, TrainSettings(config=name, steps=1), progress=False)
        assert trainer.spec.short_side == get_config(name).training_scale
    full = get_config("full")
    assert full.training_scale == full.train_short_side < full.short_side


def test_resuming_a_checkpoint_continues_exactly_like_an_uninterrupted_run(tmp_path):
    videos = _videos()
    settings = TrainSettings(config="fast", steps=4, warmup=2, checkpoint_every=2, seed=7)
    spec = ClipSpec(short_side=96, crop=(64, 96))
    Trainer(videos, tmp_path / "whole", settings, spec, progress=False).run()
    whole = read_log(tmp_path / "whole" / "train_log.jsonl")
    resumed = Trainer(videos, tmp_path / "resumed", settings, spec, progress=False)
    resumed.resume(tmp_path / "whole" / "checkpoint-000002.pt")
    assert resumed.step == 2
    resumed.run()
    tail = read_log(tmp_path / "resumed" / "train_log.jsonl")
    assert [r["step"] for r in tail] == [3, 4]
    for expected, got in zip(whole[2:], tail):
        for key in ("loss_total", "loss_fg", "loss_instance", "loss_fused", "grad_norm", "lr"):
            assert got[key] == expected[key], key
    assert whole[2]["loss_total"] != whole[0]["loss_total"]
    weights = torch.load(tmp_path / "whole" / "weights.pt", weights_only=True)
    assert weights["clips"]["length"] == spec.length and weights["clips"]["crop"] == spec.crop
    assert weights["settings"]["seed"] == 7
    final_whole = weights["state_dict"]
    final_resumed = torch.load(tmp_path / "resumed" / "weights.pt", weights_only=True)["state_dict"]
    for name, value in final_whole.items():
        assert torch.equal(final_resumed[name], value), name


def test_resume_rejects_plain_weights_and_other_configs(tmp_path):
    videos = _videos()
    Trainer(videos, tmp_path / "a", TrainSettings(config="fast", steps=1, warmup=1), SPEC, progress=False).run()
    trainer = Trainer(videos, tmp_path / "b", TrainSettings(config="fast", steps=2), SPEC, progress=False)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        trainer.resume(tmp_path / "a" / "weights.pt")
    other = Trainer(videos, tmp_path / "c", TrainSettings(config="full", steps=2), SPEC, progress=False)
    with pytest.raises(ValueError, match="config 'fast'"):
        other.resume(tmp_path / "a" / "checkpoint-000001.pt")


def test_learning_rate_warms_up_then_decays_to_the_floor():
    settings = TrainSettings(config="fast", steps=100, lr=1e-3, warmup=10, min_lr_fraction=0.05)
    rates = [learning_rate(s, settings) for s in range(100)]
    assert rates[0] < rates[5] < rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))
    assert learning_rate(100, settings) == pytest.approx(5e-5)


def test_settings_reject_nonsense():
    with pytest.raises(ValueError, match="steps"):
        TrainSettings(config="fast", steps=0)
    with pytest.raises(ValueError, match="nothing to learn"):
        Trainer(_videos(), "unused", TrainSettings(config="matching", steps=1), SPEC, progress=False)
