"""VosNode in this process: one network shared by several nodes; parameter calls answer while a frame is in the model."""

import threading

import cv2
import pytest
import rclpy
from in_process import give_objects, wait_for
from rcl_interfaces.srv import SetParameters
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter

from vos_ros.ros.client import ANSWER_TIMEOUT_S
from vos_ros.ros.convert import rgb_to_image
from vos_ros.ros.node import VosNode
from vos_ros.ros.stamps import make_header
from vos_ros.synthetic import make_clip

pytestmark = pytest.mark.ros  # starts vos_node processes and talks DDS


def test_nodes_in_one_process_share_one_network(context, matching_network):
    nodes = []
    try:
        nodes = [VosNode(network=matching_network, context=context, namespace=ns) for ns in ("front", "rear")]
        assert [n.get_fully_qualified_name() for n in nodes] == ["/front/vos_node", "/rear/vos_node"]
        sessions = [n.session for n in nodes]
        assert sessions[0] is not sessions[1], "one session per stream"
        assert sessions[0].network is sessions[1].network is matching_network
        assert [n.snapshot().device for n in nodes] == ["cpu", "cpu"]
    finally:
        for node in nodes:
            node.destroy_node()


def test_parameter_services_answer_while_a_frame_is_in_the_model(context, matching_network):
    """Inference runs on the worker thread, so a frame held inside the model delays no parameter
    call, not even of the parameters the session holds: those reach it before the next frame."""
    node = VosNode(network=matching_network, context=context)
    caller = rclpy.create_node("parameter_caller", context=context)
    executor = MultiThreadedExecutor(context=context)
    for n in (node, caller):
        executor.add_node(n)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    inside, release = threading.Event(), threading.Event()
    try:
        clip = make_clip(num_objects=2, num_frames=3, size=(96, 128), seed=0)
        give_objects(node, clip)
        step = node.session.step

        def held_step(rgb):
            inside.set()
            release.wait(ANSWER_TIMEOUT_S)
            return step(rgb)

        node.session.step = held_step
        node.receive_image(rgb_to_image(clip.frames[1], make_header(2_000_000_000)))
        assert inside.wait(ANSWER_TIMEOUT_S), "the worker takes the frame into the model"
        processed = node.count("frames_processed")

        setter = caller.create_client(SetParameters, "/vos_node/set_parameters")
        assert setter.wait_for_service(ANSWER_TIMEOUT_S)
        changes = [("overlay_alpha", 0.25), ("lost_threshold", 0.6), ("drop_fragments", False)]
        request = SetParameters.Request(parameters=[Parameter(n, value=v).to_parameter_msg() for n, v in changes])
        answered = threading.Event()
        future = setter.call_async(request)
        future.add_done_callback(lambda _: answered.set())
        assert answered.wait(ANSWER_TIMEOUT_S / 2), "set_parameters waited for the frame in the model"
        assert all(result.successful for result in future.result().results)
        assert all(node.get_parameter(name).value == value for name, value in changes)
        assert node.count("frames_processed") == processed, "the frame was still in the model"

        assert (node.session.lost_threshold, node.session.fragment_filter is None) == (0.3, False)

        release.set()
        assert wait_for(lambda: node.count("frames_processed") >= processed + 1), "the held frame's labels came out"
        node.receive_image(rgb_to_image(clip.frames[2], make_header(3_000_000_000)))
        assert wait_for(lambda: node.count("frames_processed") >= processed + 2)
        assert (node.session.lost_threshold, node.session.fragment_filter is None) == (0.6, True)
    finally:
        release.set()
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
        node.destroy_node()
        caller.destroy_node()


def test_a_4k_frame_mid_stream_keeps_the_objects(context, matching_network):
    """A camera switching to 3840x2160 (in process: one 4K rgb8 frame is 25 MB, more than the shipped
    Fast DDS shared-memory segment): the objects are carried over, labels come out at 4K, and back."""
    node = VosNode(network=matching_network, context=context)
    try:
        clip = make_clip(num_objects=2, num_frames=3, size=(180, 240), seed=4)
        give_objects(node, clip)
        uhd = cv2.resize(clip.frames[1], (3840, 2160), interpolation=cv2.INTER_LINEAR)
        node.receive_image(rgb_to_image(uhd, make_header(2_000_000_000)))
        assert wait_for(lambda: node.session.frame_size == (2160, 3840)), "the 4K frame is answered"
        assert node.session.object_ids == [1, 2]
        node.receive_image(rgb_to_image(clip.frames[2], make_header(3_000_000_000)))
        assert wait_for(lambda: node.session.frame_size == (180, 240))
        assert node.session.object_ids == [1, 2]
        assert node.count("errors") == 0
    finally:
        node.destroy_node()
