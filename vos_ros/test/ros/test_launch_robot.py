"""launch/vos.launch.py on a robot: a Fast DDS profile the robot already set is kept (and the package's
is used, for vos_node only, when none is), the log says which; use_depth, autostart and log_level
reach the node; the file launched twice under two namespaces gives two independent nodes.

Runs the launch file against stand-in launch/launch_ros modules (not installable here), as
test_launch.py does, and starts the installed node with the command line launch_ros would give it.
"""

import os
from pathlib import Path

import pytest
from lifecycle_msgs.srv import GetState
from test_launch import LAUNCH_FILE, Evaluator, entities, load_launch_description, node_command

from vos_ros.ros.client import VosClient
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.process import NodeProcess

pytestmark = pytest.mark.ros

PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"


class FakeContext:
    """The part of launch's LaunchContext the launch file's OpaqueFunction reads."""

    def __init__(self):
        self.environment = dict(os.environ)


def profile_note(description) -> str:
    """The log message the launch file's OpaqueFunction gives, as text."""
    (opaque,) = entities(description, "OpaqueFunction")
    function, args = opaque.kwargs["function"], opaque.kwargs.get("args", [])
    (log,) = function(FakeContext(), *args)
    assert type(log).__name__ == "LogInfo"
    evaluate = Evaluator(description, {})
    message = log.kwargs["msg"]
    return "".join(evaluate(part) for part in message) if isinstance(message, list) else message


def test_a_profile_the_robot_set_is_kept(monkeypatch, tmp_path):
    robot_profile = tmp_path / "robot_fastdds.xml"
    robot_profile.write_text("<profiles/>")
    monkeypatch.setenv(PROFILE_VARIABLE, str(robot_profile))
    description = load_launch_description(LAUNCH_FILE, monkeypatch)
    assert not entities(description, "SetEnvironmentVariable"), "nothing is set for the whole launch"
    _, env = node_command(description, {}, tmp_path)
    assert env == {PROFILE_VARIABLE: str(robot_profile)}, "vos_node gets the robot's profile unchanged"
    assert os.environ[PROFILE_VARIABLE] == str(robot_profile)
    note = profile_note(description)
    assert "keeps" in note and str(robot_profile) in note, note


def test_without_a_profile_vos_node_alone_gets_the_package_one(monkeypatch, tmp_path):
    monkeypatch.delenv(PROFILE_VARIABLE, raising=False)
    description = load_launch_description(LAUNCH_FILE, monkeypatch)
    _, env = node_command(description, {}, tmp_path)
    profile = Path(env[PROFILE_VARIABLE])
    assert profile.name == "fastdds_large_images.xml" and profile.is_file()
    assert PROFILE_VARIABLE not in os.environ, "the launch's own environment is untouched"
    note = profile_note(description)
    assert "is not set" in note and str(profile) in note, note


def test_arguments_reach_the_node_command(monkeypatch, tmp_path):
    description = load_launch_description(LAUNCH_FILE, monkeypatch)
    command, _ = node_command(description, {"use_depth": "false", "autostart": "false", "log_level": "warn"}, tmp_path)
    assert command[command.index("--ros-args") + 1 : command.index("--ros-args") + 3] == ["--log-level", "warn"]
    params = (tmp_path / "launch_params_1.yaml").read_text()
    assert "use_depth: false" in params and "autostart: false" in params


@pytest.fixture
def fast_params(tmp_path) -> Path:
    path = tmp_path / "fast.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    config: matching\n    short_side: 192\n    diagnostics_period: 0.2\n"
    )
    return path


def test_two_namespaces_launch_two_independent_nodes(monkeypatch, tmp_path, fast_params):
    description = load_launch_description(LAUNCH_FILE, monkeypatch)
    domain = free_domain_id()
    launches = {
        "cam1": {"log_level": "info", "autostart": "true"},
        "cam2": {"log_level": "warn", "autostart": "false"},
    }
    processes, clients = {}, {}
    try:
        for namespace, extra in launches.items():
            arguments = {
                "namespace": namespace,
                "image": f"/{namespace}/image_raw",
                "params_file": str(fast_params),
                "device": "cpu",
                "use_depth": "false",
                **extra,
            }
            scratch = tmp_path / namespace
            scratch.mkdir()
            command, env = node_command(description, arguments, scratch)
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            processes[namespace] = NodeProcess(command[2:], scratch / "vos_node.log", domain_id=domain)
        for namespace in launches:
            clients[namespace] = VosClient(
                f"/{namespace}/vos_node",
                domain_id=domain,
                process=processes[namespace],
                image_topic=f"/{namespace}/image_raw",
                outputs=True,
            )
        states = {}
        for namespace, client in clients.items():
            get_state = client.node.create_client(GetState, f"/{namespace}/vos_node/get_state")
            assert client.wait(get_state.service_is_ready, 90.0), client.process.log_tail(40)
            states[namespace] = client.call(get_state, GetState.Request()).current_state.label
        assert states == {"cam1": "active", "cam2": "unconfigured"}, "autostart per launch"

        cam1 = clients["cam1"]
        cam1.wait_ready()
        assert cam1.image_pub.get_subscription_count() == 1, "only /cam1/vos_node reads /cam1/image_raw"
        for namespace, client in clients.items():
            assert client.wait(lambda c=client: bool(c.diagnostics), 10.0), namespace
            names = {sample.name for sample in client.diagnostics}
            assert names == {f"/{namespace}/vos_node: segmentation"}, names
        logs = {namespace: process.log_path.read_text() for namespace, process in processes.items()}
        assert "[INFO]" in logs["cam1"] and "active: segmenting /cam1/image_raw" in logs["cam1"]
        assert "[INFO]" not in logs["cam2"], "log_level:=warn"
    finally:
        for client in clients.values():
            client.close()
        codes = {namespace: process.stop() for namespace, process in processes.items()}
    assert codes == {"cam1": 0, "cam2": 0}, codes
