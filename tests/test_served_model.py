"""19.3, fast: the served model (cvflow.serving.ImageModel) and the preprocessing it shares with evaluation
(cvflow.preprocess), on small networks built here; tests/test_serving.py serves the demo's for real."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cvflow.detection.ssd import detections
from cvflow.engine.run import architecture_modules
from cvflow.models.files import save_model
from cvflow.preprocess import as_images, inference_transform
from cvflow.serving import ImageModel, Servable, model_config


def _served(tmp_path, model, kind, spec, classes, options=None):
    path = save_model(tmp_path / "model.pt", model, classes)
    servable = Servable("unit", kind, spec, [torch.zeros(3, 4, 4, dtype=torch.uint8)], options=options or {})
    config = model_config(servable, classes, architecture_modules(model))  # as a training run logs it
    return ImageModel().load(config, {"model": str(path)})


def test_the_book_test_transform_is_the_evaluations(tmp_path):
    """hot dog: the served model's transform is classification_transforms' test half (one spec, one builder)."""
    from types import SimpleNamespace

    from cvflow.data.readers.images import classification_test_spec, classification_transforms

    cfg = SimpleNamespace(train_crop=16, train_scale=[0.5, 1.0], hflip=True, test_resize=20, test_crop=16,
                          mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    image = torch.randint(0, 256, (3, 37, 29), dtype=torch.uint8)
    _, evaluation = classification_transforms(cfg)
    torch.testing.assert_close(inference_transform(classification_test_spec(cfg))(image), evaluation(image),
                               rtol=0, atol=0)
    assert evaluation(image).shape == (3, 16, 16)


def test_a_served_classifier_answers_names_and_probabilities_for_any_size(tmp_path):
    from cvflow.models.resnet import build_resnet18

    torch.manual_seed(0)
    net = build_resnet18(3).eval()
    spec = {"resize": [24, 24], "scale": "unit", "mean": [0.5] * 3, "std": [0.25] * 3}
    served = _served(tmp_path, net, "classify", spec, ["cat", "dog", "bird"])
    for shape in ((2, 31, 45, 3), (1, 24, 24, 3)):
        images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        table = served.predict(None, images)
        with torch.inference_mode():
            probs = torch.softmax(net(inference_transform(spec)(torch.from_numpy(images).permute(0, 3, 1, 2))).double(),
                                  dim=1)
        assert list(table.columns) == ["label", "cat", "dog", "bird"] and len(table) == shape[0]
        assert list(table["label"]) == [["cat", "dog", "bird"][i] for i in probs.argmax(dim=1).tolist()]
        np.testing.assert_allclose(table[["cat", "dog", "bird"]].to_numpy().sum(axis=1), 1.0, atol=1e-9)


def test_a_served_fcn_answers_a_mask_at_the_input_size(tmp_path):
    from cvflow.data.readers.voc import TEST_SPEC
    from cvflow.segmentation import fcn_resnet18

    torch.manual_seed(0)
    served = _served(tmp_path, fcn_resnet18(21).eval(), "segment", TEST_SPEC, [str(i) for i in range(21)])
    mask = served.predict(None, np.zeros((2, 45, 67, 3), np.uint8))
    assert mask.shape == (2, 45, 67) and mask.dtype == np.uint8 and mask.max() < 21


def test_served_boxes_are_in_pixels_inside_the_image_above_the_threshold():
    rows = torch.tensor([[0, 0.9, -0.1, 0.2, 0.5, 1.2],    # spills over the left and the bottom: clamped
                         [0, 0.4, 0.1, 0.1, 0.2, 0.2],     # under the threshold
                         [-1, 0.95, 0.0, 0.0, 1.0, 1.0]])  # background
    kept = detections(rows, 0.5, width=200, height=100)
    torch.testing.assert_close(kept, torch.tensor([[0, 0.9, 0.0, 20.0, 100.0, 100.0]]))


def test_a_served_model_refuses_what_is_not_uint8_rgb_with_a_clear_message():
    with pytest.raises(ValueError, match="uint8"):
        as_images(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="N x H x W x 3"):
        as_images(np.zeros((1, 3, 8, 8), np.uint8))
    assert as_images(np.zeros((8, 9, 3), np.uint8)).shape == (1, 3, 8, 9)  # one image is a batch of one


def test_a_read_only_image_is_copied_and_a_writable_one_is_not():
    """np.asarray of a PIL image is read-only: torch warns on such an array (and must not write into it), so
    the served model copies it; an ordinary array goes through without a copy."""
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    shared = as_images(image)
    assert shared.shape == (1, 3, 4, 5) and np.shares_memory(shared.numpy(), image)
    image.flags.writeable = False
    copied = as_images(image)
    assert not np.shares_memory(copied.numpy(), image) and torch.equal(copied, shared)
