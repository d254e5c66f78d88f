"""Start vos_node on a camera's image topic.

    ros2 launch vos_ros vos.launch.py image:=/camera/color/image_raw [namespace:=front] \
        [depth:=/camera/aligned_depth_to_color/image_raw] [camera_info:=/camera/color/camera_info] \
        [params_file:=my_vos.yaml] [device:=cuda] [use_sim_time:=true]

The device argument overrides the device in the params file. The Fast DDS profile with a shared-memory
segment large enough for camera frames is selected for the node (FASTRTPS_DEFAULT_PROFILES_FILE).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vos_ros"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "image",
                default_value="/camera/image_raw",
                description="Input sensor_msgs/Image topic (rgb8, bgr8, rgba8, bgra8 or mono8).",
            ),
            DeclareLaunchArgument(
                "depth",
                default_value="/camera/depth/image_raw",
                description="Depth image registered to the colour image (16UC1 mm or 32FC1 m), for 3D outputs.",
            ),
            DeclareLaunchArgument(
                "camera_info", default_value="/camera/camera_info", description="CameraInfo of the colour camera."
            ),
            DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node (one per camera)."),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "vos.yaml"]),
                description="YAML file with the node's parameters.",
            ),
            DeclareLaunchArgument(
                "device", default_value="auto", description="Inference device: auto, cpu, cuda or cuda:N."
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="Use /clock (bag replay) instead of wall time."
            ),
            SetEnvironmentVariable(
                "FASTRTPS_DEFAULT_PROFILES_FILE", PathJoinSubstitution([share, "config", "fastdds_large_images.xml"])
            ),
            Node(
                package=PACKAGE,
                executable="vos_node",
                name="vos_node",
                namespace=LaunchConfiguration("namespace"),
                parameters=[
                    LaunchConfiguration("params_file"),
                    {
                        "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                        "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                    },
                ],
                remappings=[
                    ("image", LaunchConfiguration("image")),
                    ("depth", LaunchConfiguration("depth")),
                    ("camera_info", LaunchConfiguration("camera_info")),
                ],
                output="screen",
                emulate_tty=True,
            ),
        ]
    )
