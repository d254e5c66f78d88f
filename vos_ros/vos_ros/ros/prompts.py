"""vos_node's prompt inputs: the ``~/add_objects`` service and the ``~/prompts`` detector topic.

Both turn boxes into objects with the session's prompt head, on the recent frame whose stamp
the request carries. ``~/prompts`` applies ``prompt_policy``: ``add_new`` adds a box that
overlaps no tracked object (box IoU below ``prompt_match_iou``) and ignores one that does;
``refresh`` also re-seeds a matched object whose last score is below ``lost_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from vos_ros.engine.errors import VosError
from vos_ros.ros.convert import labels_to_image
from vos_ros.ros.frames import Frame
from vos_ros.ros.stamps import format_stamp, stamp_to_ns
from vos_ros_interfaces.msg import ObjectPromptArray
from vos_ros_interfaces.srv import AddObjects

PROMPTS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)

Box = tuple[float, float, float, float]


class PromptError(ValueError):
    """A prompt request that cannot be turned into session input (the message says why)."""


def roi_boxes(rois: Sequence) -> list[Box]:
    """RegionOfInterest messages -> boxes (x0, y0, x1, y1); an empty one is refused."""
    boxes = []
    for index, roi in enumerate(rois):
        if roi.width == 0 or roi.height == 0:
            raise PromptError(f"box {index} is empty: width {roi.width}, height {roi.height}")
        boxes.append(
            (
                float(roi.x_offset),
                float(roi.y_offset),
                float(roi.x_offset + roi.width),
                float(roi.y_offset + roi.height),
            )
        )
    return boxes


def grouped_points(points: Sequence, count: int) -> tuple[list[list[tuple[float, float]]], list[list[bool]]]:
    """PromptPoint messages -> per-object click lists and polarities; a point naming no box is refused."""
    xy: list[list[tuple[float, float]]] = [[] for _ in range(count)]
    flags: list[list[bool]] = [[] for _ in range(count)]
    for index, point in enumerate(points):
        if point.object_index >= count:
            raise PromptError(
                f"point {index} is for box {point.object_index} but the request has {count} box(es): it names no box"
            )
        xy[point.object_index].append((float(point.x), float(point.y)))
        flags[point.object_index].append(bool(point.positive))
    return xy, flags


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def plan_prompts(
    boxes: Sequence[Box],
    scores: Sequence[float],
    tracked: dict[int, Box],
    last_scores: dict[int, float],
    policy: str,
    match_iou: float,
    lost_threshold: float,
    room: int,
) -> tuple[list[int], dict[int, Box], int]:
    """What to do with detector boxes: (indices of boxes to add, {tracked id: box to re-seed}, boxes left out
    for lack of room). Boxes are taken by descending score; one that matches a tracked object or a box
    already taken (IoU >= ``match_iou``) adds nothing."""
    add: list[int] = []
    refresh: dict[int, Box] = {}
    left_out = 0
    for index in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        box = boxes[index]
        matches = sorted(((box_iou(box, b), i) for i, b in tracked.items()), reverse=True)
        if matches and matches[0][0] >= match_iou:
            object_id = matches[0][1]
            if policy == "refresh" and last_scores.get(object_id, 1.0) < lost_threshold and object_id not in refresh:
                refresh[object_id] = box
            continue
        if any(box_iou(box, boxes[i]) >= match_iou for i in add):
            continue
        if len(add) >= room:
            left_out += 1
            continue
        add.append(index)
    return add, refresh, left_out


class PromptInputs:
    """Serves ``~/add_objects`` and listens on ``~/prompts`` for one camera of a VosNode (a
    :class:`~vos_ros.ros.camera.CameraChannel`: uses its session, lock and frames; ``~/<camera>/...``
    for a named camera)."""

    def __init__(self, camera):
        self.camera = camera
        node = camera.node
        group = MutuallyExclusiveCallbackGroup()
        self.service = node.create_service(
            AddObjects, camera.private("add_objects"), self.on_add_objects, callback_group=group
        )
        self.subscription = node.create_subscription(
            ObjectPromptArray, camera.private("prompts"), self.on_prompts, PROMPTS_QOS, callback_group=group
        )

    def _frame(self, stamp) -> Frame:
        wanted = stamp_to_ns(stamp)
        frame = self.camera.recent.find(wanted)
        if frame is None:
            raise PromptError(
                f"no recent frame has the stamp {format_stamp(wanted)} s ({self.camera.recent.describe()})"
            )
        return frame

    def on_add_objects(self, request, response):
        node = self.camera
        response.success = False
        if (refusal := node.refusal()) is not None:
            response.message = refusal
            return response
        try:
            frame = self._frame(request.header.stamp)
            if not request.boxes:
                raise PromptError("no boxes: give one box per new object")
            boxes = roi_boxes(request.boxes)
            points, flags = grouped_points(request.points, len(boxes))
            with node.lock:
                result = node.session.add_objects(
                    frame.rgb, boxes, points, flags, labels=list(request.labels) or None, append=request.append
                )
                node.seeded(frame)
                tracked = node.session.object_ids
        except (PromptError, VosError) as error:
            response.message = f"prompts refused: {error}"
            node.get_logger().warning(response.message)
            return response
        response.success = True
        response.object_ids = result.ids
        response.mask = labels_to_image(result.label_map, frame.header)
        response.message = f"{node.describe()}added objects {result.ids}; tracking {tracked} from stamp {format_stamp(frame.stamp_ns)} s"
        node.get_logger().info(response.message)
        return response

    def on_prompts(self, msg) -> None:
        node = self.camera
        if (refusal := node.refusal()) is not None:
            node.warn(f"ignoring prompts on {self.subscription.topic_name}: {refusal}")
            return
        try:
            frame = self._frame(msg.header.stamp)
            boxes = roi_boxes([p.box for p in msg.prompts])
        except PromptError as error:
            node.warn(f"ignoring prompts on {self.subscription.topic_name}: {error}")
            return
        if not boxes:
            return
        live = node.live
        with node.lock:
            session = node.session
            tracked = session.tracked_boxes() if session.initialized else {}
            room = session.max_objects - (len(session.object_ids) if session.initialized else 0)
            add, refresh, left_out = plan_prompts(
                boxes,
                [p.score for p in msg.prompts],
                tracked,
                session.last_scores(),
                live["prompt_policy"],
                live["prompt_match_iou"],
                live["lost_threshold"],
                room,
            )
            try:
                if refresh:
                    session.reseed(frame.rgb, refresh)
                if add:
                    labels = [msg.prompts[i].label for i in add]
                    added = session.add_objects(frame.rgb, [boxes[i] for i in add], labels=labels, append=True).ids
            except VosError as error:
                node.warn(f"ignoring prompts: {error}")
                return
            if refresh or add:
                node.seeded(frame)
        if left_out:
            node.warn(f"{left_out} prompt(s) left out: max_objects ({session.max_objects}) reached")
        if add:
            node.get_logger().info(
                f"{node.describe()}prompts added objects {added} at stamp {format_stamp(frame.stamp_ns)} s"
            )
        if refresh:
            node.get_logger().info(
                f"{node.describe()}prompts re-seeded objects {sorted(refresh)} at stamp {format_stamp(frame.stamp_ns)} s"
            )
