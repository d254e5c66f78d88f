"""vos.launch.py under launch_testing: runs where ROS 2 is installed natively (launch, launch_ros and
launch_testing importable); skipped here, where those packages have no PyPI wheel. On this machine
test_launch.py checks the launch file instead."""

import os
import unittest

import pytest

pytest.importorskip(
    "launch_testing",
    reason="launch_testing is not installable on this machine (no PyPI wheel of launch/launch_ros/"
    "launch_testing); test_launch.py checks the launch file and its command line instead",
)

import launch
import launch_testing.actions
import launch_testing.asserts
import rclpy
from ament_index_python.packages import get_package_share_directory
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from std_srvs.srv import Trigger

pytestmark = pytest.mark.ros  # starts vos_node processes and talks DDS

NAMESPACE = "launch_test"


@pytest.mark.launch_test
def generate_test_description():
    launch_file = os.path.join(get_package_share_directory("vos_ros"), "launch", "vos.launch.py")
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(launch_file),
        launch_arguments={"namespace": NAMESPACE, "image": f"/{NAMESPACE}/camera", "device": "cpu"}.items(),
    )
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestNodeComesUp(unittest.TestCase):
    def test_services_and_remapped_subscription(self):
        context = rclpy.Context()
        rclpy.init(context=context)
        try:
            node = rclpy.create_node("vos_launch_test_probe", context=context)
            reset = node.create_client(Trigger, f"/{NAMESPACE}/vos_node/reset")
            self.assertTrue(reset.wait_for_service(timeout_sec=60.0), "vos_node services did not appear")
            subscribers = node.get_subscriptions_info_by_topic(f"/{NAMESPACE}/camera")
            self.assertIn(("vos_node", f"/{NAMESPACE}"), [(s.node_name, s.node_namespace) for s in subscribers])
            node.destroy_node()
        finally:
            rclpy.shutdown(context=context)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_code(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
