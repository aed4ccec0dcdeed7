"""Object detection (d2l 13.3-13.8): boxes, anchors, labelling, NMS, TinySSD, RoI pooling.

The book's functions under the book's names and arguments, batched and vectorised:

* :mod:`cvflow.detection.boxes`: ``box_corner_to_center``, ``box_center_to_corner``,
  ``multibox_prior``, ``box_iou``, ``assign_anchor_to_bbox``, ``offset_boxes``,
  ``offset_inverse``, ``multibox_target``, ``nms``, ``multibox_detection``.
* :mod:`cvflow.detection.ssd`: ``TinySSD`` and its parts, ``calc_loss`` /
  ``MultiboxLoss``, ``cls_eval``, ``bbox_eval``.
* :mod:`cvflow.detection.roi`: ``roi_pool``, ``roi_align``.


Import from the submodules: this package imports none of them, so code that uses one part runs
no other (and a DVC stage depends on the parts it runs only).
"""
