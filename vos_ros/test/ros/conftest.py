"""Fixtures of the ROS tests that build nodes in this process."""

import pytest
import rclpy

from vos_ros.ros.domains import free_domain_id


@pytest.fixture
def context():
    """An rclpy context of its own on a free ROS domain, shut down after the test."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=free_domain_id())
    yield context
    context.try_shutdown()
