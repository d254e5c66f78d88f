"""The training losses: KL against soft labels (averaged over all pixels or only the hardest ones) and soft IoU."""

import pytest
import torch

from vos_ros.model.network import Segmentation
from vos_ros.train.loop import TrainSettings
from vos_ros.train.losses import hardest_mean, segmentation_losses, soft_jaccard, soft_labels

OBJECTS = 2


def _labels() -> torch.Tensor:
    labels = torch.zeros(32, 32, dtype=torch.long)
    labels[4:15, 5:20] = 1
    labels[18:29, 9:27] = 2
    return labels


def _output_from(probs4: torch.Tensor, instance_logits: torch.Tensor) -> Segmentation:
    probs4 = probs4.clamp_min(1e-12)
    foreground = (1.0 - probs4[0]).clamp(1e-6, 1 - 1e-6)
    return Segmentation(
        log_probs=probs4.log(),
        fg_logit=torch.log(foreground / (1.0 - foreground)),
        instance_logits=instance_logits,
    )


def test_a_prediction_equal_to_the_soft_labels_costs_nothing_in_fg_and_fused():
    labels = _labels()
    target4 = soft_labels(labels, OBJECTS, (8, 8))
    losses = segmentation_losses(_output_from(target4, torch.zeros(OBJECTS, 4, 4)), labels, OBJECTS, hard_fraction=0.2)
    assert losses["fg"] == pytest.approx(0.0, abs=1e-4)
    assert losses["fused"] == pytest.approx(0.0, abs=1e-4)


def test_hardest_mean_averages_only_the_largest_losses():
    per_pixel = torch.arange(100.0).view(10, 10)
    assert hardest_mean(per_pixel, 1.0) == pytest.approx(49.5)
    assert hardest_mean(per_pixel, 0.2) == pytest.approx(89.5)
    assert hardest_mean(per_pixel, 0.001) == pytest.approx(99.0)


def test_a_small_hard_fraction_trains_only_the_worst_pixels():
    labels = _labels()
    wrong = soft_labels(labels, OBJECTS, (8, 8)).clone()
    wrong[:, 0, 0] = torch.tensor([0.02, 0.96, 0.02])
    wrong[:, 7, 7] = torch.tensor([0.7, 0.2, 0.1])
    touched = {}
    for fraction in (1.0, 1.0 / 64):
        logits = wrong.clamp_min(1e-6).log().requires_grad_(True)
        output = Segmentation(
            log_probs=torch.log_softmax(logits, 0),
            fg_logit=torch.zeros(8, 8),
            instance_logits=torch.zeros(OBJECTS, 4, 4),
        )
        segmentation_losses(output, labels, OBJECTS, hard_fraction=fraction)["fused"].backward()
        touched[fraction] = {tuple(p) for p in (logits.grad.abs().sum(0) > 1e-6).nonzero().tolist()}
    assert touched[1.0] == {(0, 0), (7, 7)}
    assert touched[1.0 / 64] == {(0, 0)}


def test_all_pixel_kl_has_the_gradient_of_soft_cross_entropy():
    labels = _labels()
    target4 = soft_labels(labels, OBJECTS, (8, 8))
    log_probs = torch.log_softmax(torch.randn(OBJECTS + 1, 8, 8, generator=torch.Generator().manual_seed(0)), 0)
    kl_input = log_probs.clone().requires_grad_(True)
    output = Segmentation(log_probs=kl_input, fg_logit=torch.zeros(8, 8), instance_logits=torch.zeros(OBJECTS, 4, 4))
    segmentation_losses(output, labels, OBJECTS)["fused"].backward()
    ce_input = log_probs.clone().requires_grad_(True)
    (-(target4 * ce_input).sum(0).mean()).backward()
    assert torch.allclose(kl_input.grad, ce_input.grad, atol=1e-7)


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_settings_reject_a_hard_fraction_outside_zero_to_one(fraction):
    with pytest.raises(ValueError, match="hard_pixel_fraction"):
        TrainSettings(config="full", steps=1, hard_pixel_fraction=fraction)


def test_soft_jaccard_is_one_minus_iou_averaged_over_the_objects_present():
    target = torch.zeros(3, 4, 4)
    target[0, :2] = 1.0
    target[1, :, :2] = 1.0
    probs = torch.zeros(3, 4, 4)
    probs[0, :2] = 1.0
    probs[1, :, :1] = 1.0
    probs[2] = 0.5
    assert soft_jaccard(probs, target) == pytest.approx((0.0 + 0.5) / 2)
    assert soft_jaccard(probs[2:], target[2:]) == 0.0


def test_missing_a_one_cell_object_costs_half_the_jaccard_loss_of_two_objects():
    labels = torch.zeros(32, 32, dtype=torch.long)
    labels[:24] = 1
    labels[28:, 28:] = 2
    target4 = soft_labels(labels, OBJECTS, (8, 8))
    missed_small = target4.clone()
    missed_small[:, 7, 7] = torch.tensor([1.0, 0.0, 0.0])
    losses = segmentation_losses(_output_from(missed_small, torch.zeros(OBJECTS, 4, 4)), labels, OBJECTS)
    assert losses["jaccard"] == pytest.approx(0.5, abs=1e-4)


@pytest.mark.parametrize("weight", [-0.1, -1.0])
def test_settings_reject_a_negative_jaccard_weight(weight):
    with pytest.raises(ValueError, match="jaccard_weight"):
        TrainSettings(config="full", steps=1, jaccard_weight=weight)
