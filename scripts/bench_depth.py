"""Cost of vos_node's 3D outputs per frame (no ROS graph): depth decoding (in the depth callback),
then on the inference worker after the labels are out: positions, the object cloud (only while
subscribed) and the markers. Two objects by default, at 640x480.

    . ./env.sh && python scripts/bench_depth.py [--size 640x480] [--objects 2] [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from std_msgs.msg import Header

from vos_ros_interfaces.msg import TrackedObject, TrackedObjectArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vos_ros" / "test" / "ros"))
from depth_scene import Patch, Scene, depth_image

from vos_ros.ros.depth_fusion import DepthFusion
from vos_ros.ros.spatial_messages import ObjectMarkers, objects_cloud, set_positions


def timed_ms(function, repeats: int) -> float:
    """Median milliseconds of ``function()``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of colour and depth (default 640x480)")
    parser.add_argument("--objects", type=int, default=2, help="objects in the scene (default 2)")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--stride", type=int, default=2, help="cloud_stride (default 2)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    patches = [
        Patch(
            i + 1,
            (-0.6 + 1.2 * (i + 0.5) / args.objects, 0.0, 1.2 + 0.2 * i),
            (0.5 / args.objects, 0.3),
            disc=bool(i % 2),
            colour=(200, 50, 50),
        )
        for i in range(args.objects)
    ]
    scene = Scene(width, height, patches=patches)
    view = scene.render()
    ids = [p.id for p in patches]
    header = Header(frame_id="camera")
    depth_msg = depth_image(view.depth, "16UC1")
    fusion = DepthFusion(slop_s=0.0)
    fusion.set_camera_info(scene.camera_info())
    fusion.add_depth(depth_msg, 0)
    settings = {"slop_s": 0.0, "erosion": 2, "min_valid": 20}
    markers = ObjectMarkers()

    def worker(cloud: bool) -> None:
        msg = TrackedObjectArray(header=header, objects=[TrackedObject(id=i) for i in ids])
        located = fusion.locate(0, view.labels, ids, cloud_stride=args.stride if cloud else None, **settings)
        set_positions(msg, located.geometry.positions)
        if cloud:
            objects_cloud(located.geometry.points, located.geometry.point_ids, header)
        markers.update([(i, "", located.geometry.positions[i]) for i in ids], header)

    located = fusion.locate(0, view.labels, ids, cloud_stride=args.stride, **settings)
    print(
        f"{width}x{height}, {args.objects} objects, {np.count_nonzero(view.labels)} object pixels, "
        f"{len(located.geometry.points)} cloud points at stride {args.stride}"
    )
    decode_ms = timed_ms(lambda: fusion.add_depth(depth_msg, 0), args.repeats)
    print(f"depth callback (decode 16UC1):           {decode_ms:6.2f} ms")
    print(f"worker, positions + markers (no cloud):  {timed_ms(lambda: worker(False), args.repeats):6.2f} ms")
    print(f"worker, positions + markers + cloud:     {timed_ms(lambda: worker(True), args.repeats):6.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
