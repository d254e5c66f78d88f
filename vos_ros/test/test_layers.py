"""The layering stated in docs/architecture.md, checked: imports point down, and the core never
imports rclpy (in a fresh interpreter, so no other test's imports can hide it)."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import vos_ros

PACKAGE_DIR = Path(vos_ros.__file__).resolve().parent

# Lower layers may be imported by higher ones, never the other way round. Packages on one layer
# do not import each other (bags and tools are siblings).
LAYERS = {
    "model": 0,
    "engine": 1,
    "overlay": 1,  # palette and colour overlays: pure numpy
    "synthetic": 1,  # synthetic clips for demos, benchmarks and tests: pure numpy
    "eval": 2,
    "train": 3,
    "ros": 4,
    "bags": 5,
    "tools": 5,
    "cli": 6,
}
CORE = ("model", "engine", "eval", "train")


def _unit(module: str) -> str | None:
    """The layer unit of a vos_ros module name ('vos_ros.ros.node' -> 'ros'), None outside vos_ros."""
    parts = module.split(".")
    return parts[1] if parts[0] == "vos_ros" and len(parts) > 1 else None


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PACKAGE_DIR).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"]
        if parts:
            found.append((".".join(["vos_ros", *parts]), path))
    return found


def _imports(module: str, path: Path) -> set[str]:
    """Every vos_ros module a file imports, at any depth of the file (function-level imports too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
    return {name for name in names if name.split(".")[0] == "vos_ros"}


def test_every_module_belongs_to_a_layer():
    units = {_unit(module) for module, _ in _modules()} - {None}
    assert units <= set(LAYERS), f"modules outside any layer: {sorted(units - set(LAYERS))}"


def test_imports_point_down():
    wrong = []
    for module, path in _modules():
        unit = _unit(module)
        if unit is None:
            continue
        for imported in _imports(module, path):
            target = _unit(imported)
            if target is None or target == unit:
                continue
            if LAYERS[target] >= LAYERS[unit]:
                wrong.append(f"{module} imports {imported} ({unit} -> {target})")
    assert not wrong, "imports that do not point down:\n" + "\n".join(wrong)


def test_the_check_sees_a_wrong_import(tmp_path):
    """The import walker resolves relative and function-level imports (so a wrong one would show)."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from ..ros import node\n    import vos_ros.cli.eval\n")
    assert _imports("vos_ros.model.probe", source) == {"vos_ros.ros", "vos_ros.cli.eval"}


def test_core_imports_no_rclpy_in_a_fresh_interpreter():
    core = sorted(
        info.name
        for unit in CORE
        for info in pkgutil.walk_packages([str(PACKAGE_DIR / unit)], prefix=f"vos_ros.{unit}.")
    )
    assert len(core) > 20, core
    code = (
        "import importlib, sys\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rosidl_parser', 'rpyutils'))\n"
        "print(','.join(leaked))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "", f"the core imported ROS modules: {done.stdout.strip()}"


@pytest.mark.parametrize("unit", CORE)
def test_core_packages_import_no_ros_message_packages(unit):
    """Statically too: no core file names rclpy or a ROS message package."""
    ros_roots = {"rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "vos_ros_interfaces", "rosbags"}
    offenders = []
    for module, path in _modules():
        if _unit(module) != unit:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            offenders += [f"{module}: {root}" for root in roots & ros_roots]
    assert not offenders, offenders
