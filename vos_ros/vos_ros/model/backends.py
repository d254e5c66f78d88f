"""Inference backends: the per-frame network run by PyTorch (``torch``), ONNX Runtime
(``onnxruntime``) or OpenVINO (``openvino``).

``make_backend(network, "onnxruntime")`` returns an object with the network's inference
interface (``config``, ``device``, ``encode``, ``segment``), so a Session runs on it unchanged.
Its two graphs are exported from the loaded weights at run time (nothing is downloaded); the
``openvino`` backend compiles the same ONNX graphs with OpenVINO's CPU plugin (float32):

- ``encoder``: image [1, 3, H, W] -> key, instance, skip, hidden features;
- ``segment``: the segmentation step (``VosNetwork.segment_tensors``) with a dynamic number of
  objects K and of reference pixels (foreground and background), -> log-probabilities.

The image size is fixed per graph (the backbone's TensorFlow "same" padding depends on the
size), so graphs are made per input size, once, and kept in memory or in ``graph_dir``.
The anchors' pixel split (data-dependent, cached per anchor) stays in PyTorch. A frame the
graph cannot take (fewer than ``topk`` foreground or background reference pixels) runs through
the PyTorch network instead.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vos_ros.model.network import EncodedFrame, Reference, Segmentation, VosNetwork, segment_inputs
from vos_ros.model.profiling import stage

BACKENDS = ("torch", "onnxruntime", "openvino")
OPSET = 17
ENCODER_OUTPUTS = ("key", "instance", "skip", "hidden")
SEGMENT_INPUTS = (
    "key",
    "instance",
    "skip",
    "hidden",
    "fg_keys",
    "bg_keys",
    "fg_probs",
    "bg_probs",
    "anchor_sums",
    "anchor_weights",
    "previous_key",
    "previous_instance",
    "previous_probs",
)
# Dynamic axes of the segmentation graph: K objects (K+1 classes), Mf / Mb reference pixels.
SEGMENT_DYNAMIC = {
    "fg_keys": {1: "fg_pixels"},
    "bg_keys": {1: "bg_pixels"},
    "fg_probs": {0: "classes", 1: "fg_pixels"},
    "bg_probs": {0: "classes", 1: "bg_pixels"},
    "anchor_sums": {0: "objects"},
    "anchor_weights": {0: "objects"},
    "previous_probs": {0: "classes"},
    "log_probs": {0: "classes"},
}


class BackendError(ValueError):
    """A backend cannot be used: its package is missing, a graph file is unreadable, ..."""


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:
        raise BackendError(
            f"backend 'onnxruntime' needs the Python package onnxruntime (see requirements/core.txt): {error}"
        ) from None
    return onnxruntime


def _import_openvino():
    try:
        import openvino
    except ImportError as error:
        raise BackendError(
            f"backend 'openvino' needs the Python package openvino (see requirements/core.txt): {error}"
        ) from None
    return openvino


class _OpenVinoGraph:
    """A compiled OpenVINO model with ONNX Runtime's ``run(None, feeds) -> [outputs]``; one infer request
    per thread (the round's threads of a node may run one graph at once)."""

    def __init__(self, compiled):
        self._compiled = compiled
        self._outputs = list(compiled.outputs)
        self._local = threading.local()

    def run(self, _names, feeds: dict) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        result = request.infer(feeds)
        return [np.array(result[output]) for output in self._outputs]


class _EncoderGraph(nn.Module):
    def __init__(self, network: VosNetwork):
        super().__init__()
        self.network = network

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        frame = self.network.encode_features(self.network.backbone(rgb))[0]
        return frame.key[None], frame.instance[None], frame.skip, frame.hidden


class _SegmentGraph(nn.Module):
    def __init__(self, network: VosNetwork):
        super().__init__()
        self.network = network

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.network.segment_tensors(*inputs)[0]


def weights_fingerprint(network: VosNetwork) -> str:
    """A short hash of the config and every weight: graph files are named after it."""
    digest = hashlib.sha1(network.config.name.encode())
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def export_encoder(network: VosNetwork, size: tuple[int, int], path: str | Path | io.BytesIO) -> None:
    """Write the encoder graph for images of ``size`` (height, width) at the network's input scale."""
    example = torch.rand(1, 3, *size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _EncoderGraph(network).eval(),
            (example,),
            path,
            input_names=["rgb"],
            output_names=list(ENCODER_OUTPUTS),
            opset_version=OPSET,
            dynamo=False,
        )


def export_segment(network: VosNetwork, inputs: list[torch.Tensor], path: str | Path | io.BytesIO) -> None:
    """Write the segmentation graph traced on ``inputs`` (see SEGMENT_INPUTS), K and M dynamic."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _SegmentGraph(network).eval(),
            tuple(inputs),
            path,
            input_names=list(SEGMENT_INPUTS),
            output_names=["log_probs"],
            dynamic_axes=SEGMENT_DYNAMIC,
            opset_version=OPSET,
            dynamo=False,
        )


def graph_exportable(network: VosNetwork, inputs: list[torch.Tensor]) -> bool:
    """True when the segmentation graph can take ``inputs`` (enough fg and bg reference pixels)."""
    topk = network.config.topk
    return inputs[4].shape[1] >= topk and inputs[5].shape[1] >= topk


class OnnxRuntimeNetwork:
    """The network's per-frame work through ONNX Runtime (CPU); same interface as VosNetwork for a Session."""

    backend = "onnxruntime"

    def __init__(self, network: VosNetwork, graph_dir: str | Path | None = None, threads: int | None = None):
        self._runtime = self._import_runtime()
        if not network.config.learned:
            raise BackendError(f"backend {self.backend!r} runs the learned configs, not {network.config.name!r}")
        if network.device.type != "cpu":
            raise BackendError(f"backend {self.backend!r} runs on the CPU; the network is on {network.device}")
        self.network = network
        self.config = network.config
        self.graph_dir = Path(graph_dir) if graph_dir is not None else None
        self.threads = threads or torch.get_num_threads()
        self.fingerprint = weights_fingerprint(network)
        self._graphs: dict[tuple[str, int, int], object] = {}
        self._graph_lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @staticmethod
    def _import_runtime():
        return _import_onnxruntime()

    def _options(self):
        options = self._runtime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle pool threads sleep instead of spinning: the CPU is shared with PyTorch and ROS callbacks.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return options

    def _load(self, source: str | bytes, name: str):
        try:
            return self._runtime.InferenceSession(source, self._options(), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
            raise BackendError(f"onnxruntime cannot load the {name}: {error}") from None

    def graph_path(self, kind: str, size: tuple[int, int]) -> Path | None:
        """Where the graph ``kind`` for a (height, width) input lives in ``graph_dir`` (None: in memory)."""
        if self.graph_dir is None:
            return None
        return self.graph_dir / f"{self.config.name}-{self.fingerprint}-{kind}-{size[1]}x{size[0]}.onnx"

    def _graph(self, kind: str, size: tuple[int, int], export) -> object:
        cached = self._graphs.get((kind, *size))
        if cached is not None:
            return cached
        with self._graph_lock:  # sessions stepped on several threads build each graph once
            cached = self._graphs.get((kind, *size))
            return cached if cached is not None else self._build_graph(kind, size, export)

    def _build_graph(self, kind: str, size: tuple[int, int], export) -> object:
        path = self.graph_path(kind, size)
        if path is not None and path.is_file():
            graph = self._load(str(path), f"{kind} graph {path}")
        else:
            buffer = io.BytesIO()
            with torch.inference_mode(False), torch.no_grad():
                export(buffer)
            data = buffer.getvalue()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            graph = self._load(data, f"exported {kind} graph")
        self._graphs[(kind, *size)] = graph
        return graph

    def describe(self, path: str | Path) -> dict:
        """Input and output names, element types and shapes (dynamic axes by name) of an ONNX file."""
        graph = self._load(str(path), f"graph {path}")

        def spec(args) -> list[dict]:
            return [{"name": a.name, "type": a.type, "shape": list(a.shape)} for a in args]

        return {"inputs": spec(graph.get_inputs()), "outputs": spec(graph.get_outputs())}

    def encode(self, rgb: torch.Tensor) -> EncodedFrame:
        """Encode one image [1, 3, H, W] (RGB in [0, 1]) with the encoder graph."""
        size = tuple(rgb.shape[-2:])
        graph = self._graph("encoder", size, lambda out: export_encoder(self.network, size, out))
        with stage("encoder graph"):
            key, instance, skip, hidden = (
                torch.from_numpy(a) for a in graph.run(None, {"rgb": rgb.cpu().numpy().astype(np.float32)})
            )
        return EncodedFrame(key=key[0], instance=instance[0], skip=skip, hidden=hidden)

    def segment(self, frame: EncodedFrame, anchors: list[Reference], previous: Reference) -> Segmentation:
        """Segment all K objects of ``frame`` with the segmentation graph (PyTorch for frames it cannot take)."""
        with stage("segment inputs"):
            inputs = segment_inputs(frame, anchors, previous, self.config)
        if not graph_exportable(self.network, inputs):
            return self.network.segment(frame, anchors, previous)
        size = frame.size
        graph = self._graph("segment", size, lambda out: export_segment(self.network, inputs, out))
        with stage("segment graph"):
            feeds = {name: t.detach().cpu().contiguous().numpy() for name, t in zip(SEGMENT_INPUTS, inputs)}
            (log_probs,) = graph.run(None, feeds)
        log_probs = torch.from_numpy(log_probs)
        empty = log_probs.new_zeros(0)
        return Segmentation(log_probs=log_probs, fg_logit=empty, instance_logits=empty)


class OpenVinoNetwork(OnnxRuntimeNetwork):
    """The same exported graphs compiled by OpenVINO's CPU plugin (float32, latency-first, ``threads``
    inference threads); same interface as VosNetwork for a Session."""

    backend = "openvino"

    def __init__(self, network: VosNetwork, graph_dir: str | Path | None = None, threads: int | None = None):
        super().__init__(network, graph_dir, threads)
        # PyTorch keeps only the glue around the graphs: with its default two threads, their OpenMP
        # workers spin after each op on the cores OpenVINO's threads need (fast: encoder 14 ms, not 8).
        torch.set_num_threads(1)

    @staticmethod
    def _import_runtime():
        return _import_openvino()

    def _load(self, source: str | bytes, name: str):
        core = self._runtime.Core()
        config = {
            "INFERENCE_NUM_THREADS": self.threads,
            "PERFORMANCE_HINT": "LATENCY",
            # float32: on a CPU with bf16 units OpenVINO would otherwise run bf16, off torch by 1e-1.
            "INFERENCE_PRECISION_HINT": "f32",
        }
        try:
            model = core.read_model(source if isinstance(source, str) else io.BytesIO(source))
            return _OpenVinoGraph(core.compile_model(model, "CPU", config))
        except Exception as error:  # OpenVINO raises RuntimeError with its own text for unreadable graphs
            raise BackendError(f"openvino cannot load the {name}: {str(error).splitlines()[-1]}") from None


def make_backend(network: VosNetwork, backend: str = "torch", graph_dir: str | Path | None = None):
    """``network`` itself for ``torch``; an OnnxRuntimeNetwork (OpenVinoNetwork) over it for ``onnxruntime``
    (``openvino``)."""
    if backend == "torch":
        return network
    if backend == "onnxruntime":
        return OnnxRuntimeNetwork(network, graph_dir=graph_dir)
    if backend == "openvino":
        return OpenVinoNetwork(network, graph_dir=graph_dir)
    raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
