"""The shipped weights of every learned config: strict loading and real segmentation."""

import warnings

import numpy as np
import pytest

from vos_ros.engine.session import Session
from vos_ros.eval.metrics import db_eval_iou
from vos_ros.model import LEARNED_CONFIGS, VosNetwork, build_network, get_config
from vos_ros.model.factory import load_checkpoint, shipped_weights
from vos_ros.synthetic import make_clip

MAX_BYTES = 25 * 1024 * 1024


@pytest.mark.parametrize("name", LEARNED_CONFIGS)
def test_shipped_weights_load_strictly_and_by_default(name):
    path = shipped_weights(name)
    assert path is not None and path.stat().st_size <= MAX_BYTES
    checkpoint = load_checkpoint(path)
    assert checkpoint["config"] == name
    VosNetwork(get_config(name), pretrained_backbone=False).load_state_dict(checkpoint["state_dict"], strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        network = build_network(name, device="cpu")
    for key, value in network.state_dict().items():
        assert np.array_equal(value.numpy(), checkpoint["state_dict"][key].numpy()), key


@pytest.mark.parametrize("name", LEARNED_CONFIGS)
def test_shipped_weights_segment_synthetic_clips_far_better_than_chance(name):
    # The weights learned on real DAVIS video; flat synthetic shapes are out of their domain,
    # so the bar is "far above chance" (chance: the whole frame as the object), not DAVIS accuracy,
    # measured over a few clips because one clip of out-of-domain shapes is a noisy measure.
    network = build_network(name, device="cpu")
    scores, chance = [], []
    for seed in (11, 12, 13, 14):
        clip = make_clip(num_objects=2, num_frames=6, size=(192, 256), seed=seed)
        session = Session(network)
        session.set_mask(clip.frames[0], clip.labels[0])
        for frame, truth in zip(clip.frames[1:], clip.labels[1:]):
            prediction = session.step(frame).label_map
            for obj in clip.object_ids:
                scores.append(db_eval_iou(truth == obj, prediction == obj))
                chance.append(db_eval_iou(truth == obj, np.ones_like(truth, dtype=bool)))
    assert np.mean(scores) > 0.4
    assert np.mean(scores) > 4 * np.mean(chance)
