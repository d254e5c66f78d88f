from glob import glob

from setuptools import find_packages, setup

PACKAGE = "vos_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Semi-supervised multi-object video object segmentation as a ROS 2 node",
    license="Apache-2.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["weights/*.pt"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "vos_node = vos_ros.ros.node:main",
            "vos-ros-segment = vos_ros.cli.segment:main",
            "vos-ros-eval = vos_ros.cli.eval:main",
            "vos-ros-bench = vos_ros.cli.bench:main",
            "vos-ros-export = vos_ros.cli.export:main",
            "vos-ros-train = vos_ros.cli.train:main",
            "vos-ros-soup = vos_ros.cli.soup:main",
            "vos-ros-demo = vos_ros.cli.demo:main",
            "vos-ros-bag-from-davis = vos_ros.cli.bag_from_davis:main",
            "vos-ros-replay = vos_ros.cli.replay:main",
            "vos-ros-bag-eval = vos_ros.cli.bag_eval:main",
            "vos-ros-node-bench = vos_ros.cli.node_bench:main",
            "vos-ros-decode-bench = vos_ros.cli.decode_bench:main",
            "vos-ros-train-prompts = vos_ros.cli.train_prompts:main",
            "vos-ros-eval-prompts = vos_ros.cli.eval_prompts:main",
            "vos-ros-prompt = vos_ros.cli.prompt:main",
        ],
    },
)
