"""The onnxruntime and openvino backends: graphs exported from the weights give the numbers PyTorch gives."""

import sys

import numpy as np
import pytest
import torch

from vos_ros.engine.session import Session
from vos_ros.model.backends import BackendError, OnnxRuntimeNetwork, OpenVinoNetwork, make_backend, segment_inputs
from vos_ros.synthetic import make_clip

pytest.importorskip("onnxruntime")

SHORT_SIDE = 160
SIZE = (160, 224)


@pytest.fixture(scope="module", params=["onnxruntime", "openvino"])
def ort_network(request, fast_network):
    """The fast network through each graph backend (the name is the first one's)."""
    pytest.importorskip(request.param)
    threads = torch.get_num_threads()
    yield make_backend(fast_network, request.param)
    torch.set_num_threads(threads)  # the openvino backend leaves PyTorch one thread for its glue


def _one_step(network, backend, objects: int, seed: int):
    """Torch and onnxruntime log-probs of the same step, from the same references."""
    clip = make_clip(num_objects=objects, num_frames=2, size=SIZE, seed=seed)
    session = Session(network, short_side=SHORT_SIDE)
    session.set_mask(clip.frames[0], clip.labels[0])
    rgb = session._to_tensor(clip.frames[1])
    anchors, previous = session.memory.anchors, session.memory.previous
    with torch.inference_mode():
        frame = network.encode(rgb)
        expected = network.segment(frame, anchors, previous).log_probs
        ort_frame = backend.encode(rgb)
        got = backend.segment(frame, anchors, previous).log_probs
        inputs = segment_inputs(frame, anchors, previous)
    return frame, ort_frame, expected, got, inputs


def _max_log_prob_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest |log p - log p'| where PyTorch's probability is at least 1e-3; probabilities within 1e-4
    everywhere. Deeper in the tail PyTorch's own numbers move with its thread count: at log p = -9 both
    graph backends agreed with each other and differed from PyTorch on one thread by 1.2e-3."""
    assert float((got.exp() - expected.exp()).abs().max()) < 1e-4
    return float((got - expected).abs()[expected > np.log(1e-3)].max())


@pytest.mark.parametrize(("objects", "seed"), [(1, 0), (3, 1)])
def test_exported_graphs_match_torch(fast_network, ort_network, objects, seed):
    frame, ort_frame, expected, got, inputs = _one_step(fast_network, ort_network, objects, seed)
    assert inputs[4].shape[1] >= fast_network.config.topk  # the graph, not the PyTorch fallback, ran
    assert inputs[5].shape[1] >= fast_network.config.topk
    for name in ("key", "instance", "skip", "hidden"):
        assert torch.allclose(getattr(frame, name), getattr(ort_frame, name), atol=1e-3), name
    assert got.shape == expected.shape == (objects + 1, *frame.skip.shape[-2:])
    assert _max_log_prob_error(got, expected) < 1e-3


def test_one_graph_serves_any_number_of_objects(fast_network, ort_network):
    # The graphs above were traced with some K; 2 and 4 objects go through the same graph.
    for objects in (2, 4):
        *_, expected, got, _ = _one_step(fast_network, ort_network, objects, seed=objects)
        assert _max_log_prob_error(got, expected) < 1e-3


def test_backend_label_maps_match_torch_on_a_clip(fast_network, ort_network):
    clip = make_clip(num_objects=3, num_frames=8, size=SIZE, seed=5)
    maps = {}
    for name, network in (("torch", fast_network), ("graphs", ort_network)):
        session = Session(network, short_side=SHORT_SIDE)
        session.set_mask(clip.frames[0], clip.labels[0])
        maps[name] = np.stack([session.step(frame).label_map for frame in clip.frames[1:]])
    assert len(np.unique(maps["torch"])) > 2  # several objects were actually segmented
    assert np.mean(maps["torch"] == maps["graphs"]) >= 0.995


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_missing_backend_package_is_a_clear_error(fast_network, monkeypatch, backend):
    monkeypatch.setitem(sys.modules, backend, None)  # import fails as if not installed
    with pytest.raises(BackendError, match=f"backend '{backend}' needs the Python package {backend}"):
        make_backend(fast_network, backend)


@pytest.mark.parametrize("kind", [OnnxRuntimeNetwork, OpenVinoNetwork])
def test_corrupt_graph_file_is_a_clear_error_naming_it(fast_network, tmp_path, kind):
    pytest.importorskip(kind.backend)
    threads = torch.get_num_threads()
    backend = kind(fast_network, graph_dir=tmp_path)
    torch.set_num_threads(threads)
    rgb = torch.rand(1, 3, 64, 96)
    path = backend.graph_path("encoder", (64, 96))
    path.write_bytes(b"this is not an onnx file")
    with pytest.raises(BackendError, match=str(path)):
        backend.encode(rgb)


def test_graphs_are_kept_in_graph_dir_and_reused(fast_network, tmp_path):
    rgb = torch.rand(1, 3, 64, 96)
    first = OnnxRuntimeNetwork(fast_network, graph_dir=tmp_path).encode(rgb)
    path = OnnxRuntimeNetwork(fast_network, graph_dir=tmp_path).graph_path("encoder", (64, 96))
    assert path.is_file() and fast_network.config.name in path.name
    again = OnnxRuntimeNetwork(fast_network, graph_dir=tmp_path).encode(rgb)  # loaded from the file
    assert torch.equal(first.key, again.key)


def test_backend_choices(fast_network, matching_network):
    assert make_backend(fast_network, "torch") is fast_network
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend(fast_network, "tensorrt")
    with pytest.raises(BackendError, match="learned"):
        make_backend(matching_network, "onnxruntime")
