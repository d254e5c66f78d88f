"""Developer tools above the ROS layer: the end-to-end node benchmark."""
