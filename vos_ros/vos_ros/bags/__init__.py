"""Rosbag2 tools: clip bags, replay through vos_node, recording and scoring (rclpy only in ``replay``)."""
