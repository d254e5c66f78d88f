"""launch/vos.launch.py, checked without launch/launch_ros (they are not installable here).

The launch file is executed with stand-in ``launch``/``launch_ros`` modules that record what it
builds. Every executable, share file, parameter and remap it names is checked against the
installed package, and the installed node is started with exactly the command line launch_ros
(Jazzy, ``launch_ros/actions/node.py``) would give it: ``--ros-args -r __node:=NAME -r __ns:=NS``,
one ``--params-file`` per parameters entry (dicts written to a YAML file keyed by the node's full
name), then ``-r FROM:=TO`` per remapping, with the Node's ``additional_env`` set.
"""

import importlib.util
import os
import signal
import sys
import time
import types
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml
from ament_index_python.packages import get_package_prefix, get_package_share_directory
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters
from rclpy.parameter import parameter_value_to_python

from vos_ros.ros import node as vos_node
from vos_ros.ros.client import VosClient
from vos_ros.ros.domains import free_domain_id
from vos_ros.ros.parameters import PARAMETERS, SPECS
from vos_ros.ros.process import NodeProcess

pytestmark = pytest.mark.ros  # starts vos_node processes and talks DDS

PACKAGE = "vos_ros"
SOURCE = Path(__file__).resolve().parents[2]
LAUNCH_FILE = SOURCE / "launch" / "vos.launch.py"
PARAMS_FILE = SOURCE / "config" / "vos.yaml"
LAUNCH_ARGS = {
    "image": "/camera/color/image_raw",
    "depth": "/camera/aligned_depth_to_color/image_raw",
    "camera_info": "/camera/color/camera_info",
    "namespace": "cam1",
    "device": "cpu",
    "use_sim_time": "true",
}


# stand-ins for the launch / launch_ros API the file uses ------------------------------------------


class Recorded:
    """Remembers its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


STAND_INS = {
    "launch": ["LaunchDescription"],
    "launch.actions": ["DeclareLaunchArgument", "SetEnvironmentVariable", "LogInfo", "OpaqueFunction"],
    "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution", "EnvironmentVariable"],
    "launch_ros": [],
    "launch_ros.actions": ["Node"],
    "launch_ros.descriptions": ["ParameterValue"],
    "launch_ros.substitutions": ["FindPackageShare"],
}
CLASSES = {name: type(name, (Recorded,), {}) for names in STAND_INS.values() for name in names}


def load_launch_description(path: Path, monkeypatch) -> Recorded:
    """Run the launch file's generate_launch_description() against the stand-ins."""
    for module_name, names in STAND_INS.items():
        module = types.ModuleType(module_name)
        for name in names:
            setattr(module, name, CLASSES[name])
        monkeypatch.setitem(sys.modules, module_name, module)
    spec = importlib.util.spec_from_file_location("vos_launch_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def entities(description: Recorded, kind: str) -> list[Recorded]:
    return [e for e in description.args[0] if type(e).__name__ == kind]


def walk(value):
    """Every recorded object reachable from ``value``."""
    if isinstance(value, Recorded):
        yield value
        for item in (*value.args, *value.kwargs.values()):
            yield from walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from walk(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk(item)


class Evaluator:
    """Evaluates the recorded substitutions for given launch arguments, as launch would."""

    def __init__(self, description: Recorded, arguments: dict[str, str]):
        self.defaults = {
            a.args[0]: a.kwargs.get("default_value") for a in entities(description, "DeclareLaunchArgument")
        }
        unknown = set(arguments) - set(self.defaults)
        assert not unknown, f"launch arguments {unknown} are not declared"
        self.arguments = arguments

    def __call__(self, value):
        kind = type(value).__name__
        if isinstance(value, str):
            return value
        if isinstance(value, list):  # text and substitutions concatenated, as launch does
            return "".join(self(part) for part in value)
        if kind == "LaunchConfiguration":
            name = value.args[0]
            assert name in self.defaults, f"LaunchConfiguration({name!r}) has no DeclareLaunchArgument"
            return self.arguments[name] if name in self.arguments else self(self.defaults[name])
        if kind == "PathJoinSubstitution":
            return os.path.join(*(self(part) for part in value.args[0]))
        if kind == "EnvironmentVariable":
            found = os.environ.get(value.args[0])
            return found if found is not None else self(value.kwargs.get("default_value", ""))
        if kind == "FindPackageShare":
            return get_package_share_directory(value.args[0])
        if kind == "ParameterValue":
            text = self(value.args[0])
            value_type = value.kwargs.get("value_type")
            parsed = yaml.safe_load(text) if value_type is not str else text
            assert value_type is None or isinstance(parsed, value_type), (text, value_type)
            return parsed
        raise AssertionError(f"the test cannot evaluate {kind}: extend Evaluator")


def node_command(description: Recorded, arguments: dict[str, str], scratch: Path) -> tuple[list[str], dict[str, str]]:
    """(command line, extra environment) launch_ros would run the file's one Node with."""
    evaluate = Evaluator(description, arguments)
    (node,) = entities(description, "Node")
    package, executable, name = (evaluate(node.kwargs[key]) for key in ("package", "executable", "name"))
    namespace = "/" + evaluate(node.kwargs.get("namespace", "")).strip("/")
    full_name = namespace.rstrip("/") + "/" + name
    command = [os.path.join(get_package_prefix(package), "lib", package, executable), "--ros-args"]
    command += [evaluate(argument) for argument in node.kwargs.get("ros_arguments", [])]
    command += ["-r", f"__node:={name}", "-r", f"__ns:={namespace}"]
    for index, entry in enumerate(node.kwargs.get("parameters", [])):
        if isinstance(entry, dict):
            path = scratch / f"launch_params_{index}.yaml"
            values = {key: evaluate(value) for key, value in entry.items()}
            path.write_text(yaml.dump({full_name: {"ros__parameters": values}}))
            command += ["--params-file", str(path)]
        else:
            command += ["--params-file", evaluate(entry)]
    for source, target in node.kwargs.get("remappings", []):
        command += ["-r", f"{evaluate(source)}:={evaluate(target)}"]
    env = {key: evaluate(value) for key, value in node.kwargs.get("additional_env", {}).items()}
    return command, env


@pytest.fixture
def description(monkeypatch):
    return load_launch_description(LAUNCH_FILE, monkeypatch)


# the launch file against the package --------------------------------------------------------------


def test_launch_arguments_are_declared_and_described(description):
    declared = {a.args[0]: a.kwargs for a in entities(description, "DeclareLaunchArgument")}
    assert set(declared) == {
        "image",
        "depth",
        "camera_info",
        "namespace",
        "params_file",
        "device",
        "image_transport",
        "cameras",
        "use_sim_time",
        "use_depth",
        "autostart",
        "log_level",
    }
    for name, kwargs in declared.items():
        assert kwargs.get("description"), name
    used = {r.args[0] for r in walk(description) if type(r).__name__ == "LaunchConfiguration"}
    assert used <= set(declared), f"undeclared launch configurations {used - set(declared)}"
    assert SPECS["device"].problem(declared["device"]["default_value"]) is None


def test_executable_is_the_installed_console_script(description):
    (node,) = entities(description, "Node")
    package_xml = (SOURCE / "package.xml").read_text()
    assert f"<name>{node.kwargs['package']}</name>" in package_xml
    scripts = {ep.name: ep for ep in entry_points(group="console_scripts")}
    entry = scripts[node.kwargs["executable"]]
    assert entry.value == "vos_ros.ros.node:main" and entry.load() is vos_node.main
    installed = Path(get_package_prefix(PACKAGE)) / "lib" / PACKAGE / node.kwargs["executable"]
    assert installed.is_file() and os.access(installed, os.X_OK), f"ros2 run would not find {installed}"


def test_share_files_exist_and_match_the_sources(description):
    evaluate = Evaluator(description, {})
    share = Path(get_package_share_directory(PACKAGE))
    paths = [Path(evaluate(r)) for r in walk(description) if type(r).__name__ == "PathJoinSubstitution"]
    assert {p.name for p in paths} == {"vos.yaml", "fastdds_large_images.xml"}
    for path in paths:
        assert path.is_file(), f"{path} is not installed (run make setup)"
        relative = path.relative_to(share)
        assert path.read_bytes() == (SOURCE / relative).read_bytes(), f"installed {relative} is stale"
    installed_launch = share / "launch" / LAUNCH_FILE.name
    assert installed_launch.read_bytes() == LAUNCH_FILE.read_bytes()


def test_params_file_holds_every_declared_parameter_with_its_default():
    params = yaml.safe_load(PARAMS_FILE.read_text())["/**"]["ros__parameters"]
    assert list(params) == [spec.name for spec in PARAMETERS]
    for spec in PARAMETERS:
        assert params[spec.name] == spec.default and type(params[spec.name]) is type(spec.default), spec.name


def test_launch_parameters_and_remaps_name_real_ones(description):
    (node,) = entities(description, "Node")
    names = {key for entry in node.kwargs["parameters"] if isinstance(entry, dict) for key in entry}
    assert names <= set(SPECS) | {"use_sim_time"}, names - set(SPECS)
    sources = [source for source, _ in node.kwargs["remappings"]]
    assert sources == [vos_node.IMAGE_TOPIC, vos_node.DEPTH_TOPIC, vos_node.CAMERA_INFO_TOPIC]
    assert node.kwargs["name"] == vos_node.NODE_NAME


# the node started the way the launch file starts it ----------------------------------------------


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("launch")
    with pytest.MonkeyPatch.context() as monkeypatch:
        description = load_launch_description(LAUNCH_FILE, monkeypatch)
    command, env = node_command(description, LAUNCH_ARGS, scratch)
    domain = free_domain_id()
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key, value in env.items():  # the launch file's environment, for the node and this client
            monkeypatch.setenv(key, value)
        process = NodeProcess(command[2:], scratch / "vos_node.log", domain_id=domain)
        client = None
        try:
            assert process.command == command, "the node runs the very executable the launch file names"
            client = VosClient(
                "/cam1/vos_node", domain_id=domain, process=process, image_topic=LAUNCH_ARGS["image"], outputs=True
            )
            client.wait_ready()
            yield client, env
        finally:
            if client is not None:
                client.close()
            process.stop()


SERVICE_NAMES = {
    GetParameters: "get_parameters",
    SetParameters: "set_parameters",
    DescribeParameters: "describe_parameters",
}


def call(client: VosClient, service, request):
    """Call one of the node's parameter services."""
    ros_client = client.node.create_client(service, f"{client.node_name}/{SERVICE_NAMES[service]}")
    try:
        assert client.wait(ros_client.service_is_ready, 30.0), f"{ros_client.srv_name} not available"
        return client.call(ros_client, request)
    finally:
        client.node.destroy_client(ros_client)


def test_launched_node_has_the_launch_name_remap_and_parameters(launched):
    client, env = launched
    # node names travel separately from endpoints in discovery: wait for them
    assert client.wait(lambda: ("vos_node", "/cam1") in client.node.get_node_names_and_namespaces(), 10.0)
    for topic in ("image", "depth", "camera_info"):  # endpoints are discovered one by one: wait for each

        def subscribers(topic=topic):
            return [
                (s.node_name, s.node_namespace) for s in client.node.get_subscriptions_info_by_topic(LAUNCH_ARGS[topic])
            ]

        client.wait(lambda: subscribers() == [("vos_node", "/cam1")], 10.0)
        assert subscribers() == [("vos_node", "/cam1")], topic

    expected = yaml.safe_load(PARAMS_FILE.read_text())["/**"]["ros__parameters"]
    expected.update(device="cpu", use_sim_time=True, cameras=None)  # ROS leaves an empty string array unset
    response = call(client, GetParameters, GetParameters.Request(names=list(expected)))
    actual = dict(zip(expected, (parameter_value_to_python(v) for v in response.values)))
    assert actual == expected

    environ = Path(f"/proc/{client.process.pid}/environ").read_bytes().split(b"\0")
    profile = env["FASTRTPS_DEFAULT_PROFILES_FILE"]
    assert f"FASTRTPS_DEFAULT_PROFILES_FILE={profile}".encode() in environ
    assert Path(profile).is_file()
    assert client.wait(lambda: bool(client.diagnostics), 10.0), "no diagnostics from /cam1/vos_node"
    status = client.diagnostics[-1]
    assert status.name.startswith("/cam1/vos_node") and status.hardware_id == "cpu"


def param(name: str, value) -> Parameter:
    kinds = {
        bool: ParameterType.PARAMETER_BOOL,
        int: ParameterType.PARAMETER_INTEGER,
        float: ParameterType.PARAMETER_DOUBLE,
        str: ParameterType.PARAMETER_STRING,
    }
    field = {bool: "bool_value", int: "integer_value", float: "double_value", str: "string_value"}[type(value)]
    return Parameter(name=name, value=ParameterValue(type=kinds[type(value)], **{field: value}))


def test_parameter_changes_are_validated(launched):
    client, _ = launched
    cases = [
        (param("overlay_alpha", 1.5), False, "overlay_alpha"),
        (param("lost_threshold", "high"), False, ""),
        (param("config", "fast"), False, "read-only"),
        (param("max_objects", 8), False, "read-only"),
        (param("frame_buffer_size", 0), False, "frame_buffer_size"),
        (param("drop_fragments", 1), False, "BOOL"),
        (param("overlay_alpha", 0.25), True, ""),
        (param("frame_buffer_size", 5), True, ""),
        (param("drop_fragments", False), True, ""),
    ]
    response = call(client, SetParameters, SetParameters.Request(parameters=[p for p, _, _ in cases]))
    for (parameter, ok, reason), result in zip(cases, response.results):
        assert result.successful == ok, (parameter.name, result.reason)
        assert reason in result.reason, (parameter.name, result.reason)
    values = call(
        client, GetParameters, GetParameters.Request(names=["overlay_alpha", "drop_fragments", "config"])
    ).values
    assert [parameter_value_to_python(v) for v in values] == [0.25, False, SPECS["config"].default]

    described = call(client, DescribeParameters, DescribeParameters.Request(names=["max_objects", "overlay_alpha"]))
    max_objects, alpha = described.descriptors
    assert max_objects.read_only and max_objects.integer_range[0].to_value == 65535 and max_objects.description
    assert not alpha.read_only and alpha.floating_point_range[0].to_value == 1.0


def test_sigterm_stops_the_launched_node_cleanly(launched):
    client, _ = launched
    os.kill(client.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20.0
    while client.process.exit_code() is None:
        assert time.monotonic() < deadline, "vos_node ignored SIGTERM"
        time.sleep(0.1)
    log = client.process.log_path.read_text()
    assert client.process.exit_code() == 0, log
    assert "shutting down" in log and "Traceback" not in log


@pytest.mark.parametrize(
    "override, message",
    [
        ("overlay_alpha: 2.0", "overlay_alpha"),
        ("config: huge", "unknown config 'huge'"),
        ("max_objects: 3.5", "max_objects"),
    ],
)
def test_invalid_params_file_stops_the_node_with_a_reason(tmp_path, override, message):
    params = tmp_path / "bad.yaml"
    params.write_text(f"/**:\n  ros__parameters:\n    {override}\n")
    process = NodeProcess(["--params-file", str(params)], tmp_path / "vos_node.log", domain_id=free_domain_id())
    try:
        deadline = time.monotonic() + 60.0
        while process.exit_code() is None:
            assert time.monotonic() < deadline, "the node should refuse to start"
            time.sleep(0.1)
    finally:
        process.stop()
    log = process.log_path.read_text()
    assert process.exit_code() == 1, log
    assert "cannot start" in log and message in log and "Traceback" not in log
