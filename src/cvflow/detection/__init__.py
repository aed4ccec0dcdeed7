"""Object detection (d2l 13.3-13.8): boxes, anchors, labelling, NMS, TinySSD, RoI pooling.

The book's functions under the book's names and arguments, batched and vectorised:

* :mod:`cvflow.detection.boxes`: ``box_corner_to_center``, ``box_center_to_corner``,
  ``multibox_prior``, ``box_iou``, ``assign_anchor_to_bbox``, ``offset_boxes``,
  ``offset_inverse``, ``multibox_target``, ``nms``, ``multibox_detection``.
* :mod:`cvflow.detection.ssd`: ``TinySSD`` and its parts, ``calc_loss`` /
  ``MultiboxLoss``, ``cls_eval``, ``bbox_eval``.
* :mod:`cvflow.detection.roi`: ``roi_pool``, ``roi_align``.
"""

from cvflow.detection.boxes import (
    assign_anchor_to_bbox,
    box_center_to_corner,
    box_corner_to_center,
    box_iou,
    multibox_detection,
    multibox_prior,
    multibox_target,
    nms,
    offset_boxes,
    offset_inverse,
)
from cvflow.detection.roi import roi_align, roi_pool
from cvflow.detection.ssd import (
    RATIOS,
    SIZES,
    DetectionTask,
    MultiboxLoss,
    TinySSD,
    base_net,
    bbox_eval,
    bbox_predictor,
    blk_forward,
    calc_loss,
    cls_eval,
    cls_predictor,
    concat_preds,
    down_sample_blk,
    flatten_pred,
    get_blk,
    init_class_prior,
)

__all__ = [
    "DetectionTask",
    "box_corner_to_center",
    "box_center_to_corner",
    "multibox_prior",
    "box_iou",
    "assign_anchor_to_bbox",
    "offset_boxes",
    "offset_inverse",
    "multibox_target",
    "nms",
    "multibox_detection",
    "SIZES",
    "RATIOS",
    "cls_predictor",
    "bbox_predictor",
    "flatten_pred",
    "concat_preds",
    "down_sample_blk",
    "base_net",
    "get_blk",
    "blk_forward",
    "TinySSD",
    "init_class_prior",
    "calc_loss",
    "MultiboxLoss",
    "cls_eval",
    "bbox_eval",
    "roi_pool",
    "roi_align",
]
