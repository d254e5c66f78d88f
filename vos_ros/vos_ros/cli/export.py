"""vos-ros-export: write the network's ONNX graphs (for ONNX Runtime or TensorRT) and check them once."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from vos_ros.cli.arguments import image_size
from vos_ros.cli.reports import write_json
from vos_ros.engine.session import Session
from vos_ros.model import DEFAULT_CONFIG, build_network
from vos_ros.model.backends import (
    ENCODER_OUTPUTS,
    SEGMENT_DYNAMIC,
    SEGMENT_INPUTS,
    BackendError,
    OnnxRuntimeNetwork,
    graph_exportable,
    segment_inputs,
)
from vos_ros.synthetic import make_clip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vos-ros-export",
        description="Export the encoder and the segmentation step of a network to ONNX (opset 17), write "
        "graphs.json with their inputs and outputs, and check them once with onnxruntime against PyTorch. "
        "The image size is fixed per graph (export one per camera resolution); the number of objects and "
        "of reference pixels are dynamic. The files can be given to --graph-dir of the other tools.",
    )
    parser.add_argument("--config", help=f"network config (default: the checkpoint's, else {DEFAULT_CONFIG})")
    parser.add_argument("--weights", help="checkpoint path (default: the weights shipped for the config)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--size", type=image_size, default=(480, 854), help="camera image WIDTHxHEIGHT (default 854x480)"
    )
    parser.add_argument("--objects", type=int, default=2, help="objects in the example used to trace (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic example clip (default 0)")
    return parser


def _max_diff(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.detach().float().numpy() - b).max())


def export(network, out: Path, size: tuple[int, int], objects: int, seed: int) -> dict:
    """Export both graphs into ``out`` and check them on a synthetic frame; returns the graphs.json content."""
    backend = OnnxRuntimeNetwork(network, graph_dir=out)
    clip = make_clip(num_objects=objects, num_frames=2, size=size, seed=seed)
    session = Session(network)
    session.set_mask(clip.frames[0], clip.labels[0])
    with torch.inference_mode():
        rgb = session._to_tensor(clip.frames[1])
        frame = network.encode(rgb)
        inputs = segment_inputs(frame, session.memory.anchors, session.memory.previous, network.config)
        if not graph_exportable(network, inputs):
            raise BackendError("the example frame has too few reference pixels to trace; try another --seed")
        expected = network.segment_tensors(*inputs)[0]
    ort_frame = backend.encode(rgb)
    log_probs = backend.segment(frame, session.memory.anchors, session.memory.previous).log_probs
    graph_size = tuple(rgb.shape[-2:])
    paths = {"encoder": backend.graph_path("encoder", graph_size), "segment": backend.graph_path("segment", frame.size)}
    checks = {
        "encoder_max_abs_diff": {
            name: _max_diff(getattr(frame, name), getattr(ort_frame, name).numpy()) for name in ENCODER_OUTPUTS
        },
        "segment_log_probs_max_abs_diff": _max_diff(expected, log_probs.numpy()),
    }
    return {
        "config": network.config.name,
        "weights_fingerprint": backend.fingerprint,
        "camera_size": [size[1], size[0]],
        "network_input_size": [graph_size[1], graph_size[0]],
        "opset": 17,
        "segment_inputs_order": list(SEGMENT_INPUTS),
        "segment_dynamic_axes": SEGMENT_DYNAMIC,
        "check": checks,
        "graphs": {kind: {"file": path.name, **backend.describe(path)} for kind, path in paths.items()},
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*untrained.*")
            network = build_network(args.config, args.weights, "cpu")
        report = export(network, out, args.size, args.objects, args.seed)
    except (ValueError, OSError) as error:
        print(f"vos-ros-export: error: {error}", file=sys.stderr)
        return 2
    write_json(out / "graphs.json", report)
    for kind, graph in report["graphs"].items():
        print(f"{kind:<8} {out / graph['file']}")
        for direction in ("inputs", "outputs"):
            for spec in graph[direction]:
                print(f"  {direction[:-1]:<6} {spec['name']:<18} {spec['type']:<14} {spec['shape']}")
    checks = report["check"]
    encoder_diff = max(checks["encoder_max_abs_diff"].values())
    print(
        f"check: encoder max abs diff {encoder_diff:.2e}, log-probs max abs diff "
        f"{checks['segment_log_probs_max_abs_diff']:.2e} (onnxruntime against PyTorch)"
    )
    print(f"wrote {out / 'graphs.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
