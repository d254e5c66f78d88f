"""vos_ros: semi-supervised multi-object video object segmentation for ROS 2."""

__version__ = "0.1.0"
