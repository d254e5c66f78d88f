"""Start vos_node on a camera's image topic.

    ros2 launch vos_ros vos.launch.py image:=/camera/color/image_raw [namespace:=front] \
        [depth:=/camera/aligned_depth_to_color/image_raw] [camera_info:=/camera/color/camera_info] \
        [params_file:=my_vos.yaml] [device:=cuda] [use_sim_time:=true] [use_depth:=false] \
        [autostart:=false] [log_level:=debug] [image_transport:=compressed]

    ros2 launch vos_ros vos.launch.py cameras:=front,rear [namespace:=robot]

The device, use_depth, autostart and image_transport arguments override the params file
(image_transport:=compressed subscribes to <image>/compressed, sensor_msgs/CompressedImage). vos_node is a managed
(lifecycle) node: with autostart:=false it waits unconfigured for a lifecycle manager (or
``ros2 lifecycle set``).

Several cameras, one network: ``cameras:=front,rear`` sets the node's ``cameras`` parameter. Camera ``front``
then reads ``front/image`` (``front/depth``, ``front/camera_info``) under the node's namespace, and is served by
``~/front/set_initial_mask``, ``~/front/labels``, ...; the image, depth and camera_info arguments remap the topics
of the unnamed camera only (no cameras given), so point each named camera's topics at its driver with
remaps in a parent launch file or by giving the driver those names. Alternatively launch the file once per
camera, each under its own namespace (one network per process).

Fast DDS: when FASTRTPS_DEFAULT_PROFILES_FILE is not set, vos_node (and only vos_node: the variable is
set in its process environment, not in this launch's) gets the package's profile, whose shared-memory
segment holds camera frames; a profile the robot already sets is left as it is. Either way the log says
which profile vos_node uses.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vos_ros"
PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"


def _say_which_profile(context, profile):
    """A log line: the user's Fast DDS profile is kept, or the package's is used for vos_node only."""
    own = context.environment.get(PROFILE_VARIABLE)
    if own:
        return [LogInfo(msg=f"vos_node keeps the Fast DDS profile already set: {PROFILE_VARIABLE}={own}")]
    return [
        LogInfo(
            msg=[
                f"{PROFILE_VARIABLE} is not set: vos_node (only) uses the package's Fast DDS profile ",
                profile,
            ]
        )
    ]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    profile = PathJoinSubstitution([share, "config", "fastdds_large_images.xml"])
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "image",
                default_value="/camera/image_raw",
                description="Input sensor_msgs/Image topic (8/16-bit RGB, BGR or mono, YUV 4:2:2 or 8-bit Bayer).",
            ),
            DeclareLaunchArgument(
                "depth",
                default_value="/camera/depth/image_raw",
                description="Depth image registered to the colour image (16UC1 mm or 32FC1 m), for 3D outputs.",
            ),
            DeclareLaunchArgument(
                "camera_info", default_value="/camera/camera_info", description="CameraInfo of the colour camera."
            ),
            DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node."),
            DeclareLaunchArgument(
                "cameras",
                default_value="",
                description="Comma-separated camera names served by this one node and network, e.g. front,rear: "
                "camera c reads c/image, c/depth, c/camera_info and publishes ~/c/labels, ...; empty: one camera "
                "on image, depth, camera_info.",
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "vos.yaml"]),
                description="YAML file with the node's parameters.",
            ),
            DeclareLaunchArgument(
                "device", default_value="auto", description="Inference device: auto, cpu, cuda or cuda:N."
            ),
            DeclareLaunchArgument(
                "image_transport",
                default_value="raw",
                description="raw (Image on image) or compressed (CompressedImage on <image>/compressed).",
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="false", description="Use /clock (bag replay) instead of wall time."
            ),
            DeclareLaunchArgument(
                "use_depth",
                default_value="true",
                description="Subscribe to depth and camera_info for 3D positions, ~/objects_cloud and ~/markers.",
            ),
            DeclareLaunchArgument(
                "autostart",
                default_value="true",
                description="Configure and activate vos_node at start; false: it waits unconfigured for a "
                "lifecycle manager.",
            ),
            DeclareLaunchArgument(
                "log_level", default_value="info", description="Log level of vos_node: debug, info, warn or error."
            ),
            OpaqueFunction(function=_say_which_profile, args=[profile]),
            Node(
                package=PACKAGE,
                executable="vos_node",
                name="vos_node",
                namespace=LaunchConfiguration("namespace"),
                parameters=[
                    LaunchConfiguration("params_file"),
                    {
                        "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                        "image_transport": ParameterValue(LaunchConfiguration("image_transport"), value_type=str),
                        "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                        "use_depth": ParameterValue(LaunchConfiguration("use_depth"), value_type=bool),
                        "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
                    },
                ],
                # cameras:=front,rear -> -p cameras:=[front,rear] (an empty list leaves the params file's value)
                ros_arguments=[
                    "--log-level",
                    LaunchConfiguration("log_level"),
                    "-p",
                    ["cameras:=[", LaunchConfiguration("cameras"), "]"],
                ],
                # the robot's own profile when it has one, else the package's: for this node only
                additional_env={PROFILE_VARIABLE: EnvironmentVariable(PROFILE_VARIABLE, default_value=profile)},
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
