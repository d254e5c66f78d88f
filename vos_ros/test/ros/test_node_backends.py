"""The node's ``backend`` parameter, in this process: the graph backends build from the parameters and
segment the stream as torch does."""

import numpy as np
import pytest
import torch
from in_process import give_objects, wait_for
from rclpy.parameter import Parameter

from vos_ros.model.backends import OnnxRuntimeNetwork, OpenVinoNetwork
from vos_ros.ros.convert import rgb_to_image
from vos_ros.ros.node import VosNode
from vos_ros.ros.stamps import make_header
from vos_ros.synthetic import make_clip

pytestmark = pytest.mark.ros  # creates ROS nodes

SIZE = (96, 128)


def _labels_of_a_clip(context, backend: str) -> tuple[object, np.ndarray]:
    overrides = [
        Parameter(name, value=value)
        for name, value in {"config": "fast", "backend": backend, "short_side": 96, "use_depth": False}.items()
    ]
    threads = torch.get_num_threads()
    node = VosNode(context=context, parameter_overrides=overrides)
    try:
        clip = make_clip(2, 5, SIZE, seed=3)
        give_objects(node, clip)
        maps = []
        for t in range(1, 5):
            node.receive_image(rgb_to_image(clip.frames[t], make_header((1 + t) * 1_000_000_000)))
            assert wait_for(lambda t=t: node.count("frames_processed") >= t + 1)
            maps.append(node.session._last_labels.copy())
        return node.session.network, np.stack(maps)
    finally:
        node.destroy_node()
        torch.set_num_threads(threads)  # the openvino backend leaves PyTorch one thread


@pytest.mark.parametrize("backend, kind", [("onnxruntime", OnnxRuntimeNetwork), ("openvino", OpenVinoNetwork)])
def test_a_graph_backend_segments_the_stream_as_torch_does(context, backend, kind):
    pytest.importorskip(backend)
    network, maps = _labels_of_a_clip(context, backend)
    assert isinstance(network, kind)
    _, expected = _labels_of_a_clip(context, "torch")
    assert len(np.unique(expected)) == 3  # both objects are there
    assert np.mean(maps == expected) >= 0.995
