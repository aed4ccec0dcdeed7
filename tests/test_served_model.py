"""19.3, fast: the served model (cvflow.serving.ImageModel) and the preprocessing it shares with evaluation
(cvflow.preprocess), on small networks built here; tests/test_serving.py serves the demo's for real.

What a request may hold (issue 25, item 4) is checked through ``mlflow.pyfunc.load_model(...).predict`` on a small
classifier logged and registered as a training run logs it (:func:`log_classifier`, which tests/test_serving.py
also serves over HTTP): MLflow's signature enforcement runs first, then the model's own checks."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from cvflow.detection.ssd import detections
from cvflow.engine.run import architecture_modules
from cvflow.models.files import save_model
from cvflow.preprocess import inference_transform
from cvflow.serving import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, ImageModel, Servable, as_images, model_config

#: the small classifier's test transform (any input size in, 8 x 8 to the network)
SMALL_SPEC = {"resize": [8, 8], "scale": "unit", "mean": None, "std": None}


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


def refusal(call) -> str:
    """The one-line message of the MlflowException ``call()`` raises, checked to be a bad parameter value (HTTP 400
    from a server), not any other error."""
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as caught:
        call()
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE", caught.value
    return caught.value.message


def test_a_served_model_refuses_what_is_not_uint8_rgb_with_a_clear_message():
    """Called directly (MLflow's signature checks the same before a pyfunc model runs): one line naming the fix."""
    message = refusal(lambda: as_images(np.zeros((1, 8, 8, 3), np.float32), DEFAULT_MAX_PIXELS))
    assert "uint8" in message and "float32" in message and "\n" not in message
    message = refusal(lambda: as_images(np.zeros((1, 3, 8, 8), np.uint8), DEFAULT_MAX_PIXELS))
    assert "N x H x W x 3" in message and "(1, 3, 8, 8)" in message
    # one image is not silently a batch of one: the signature refuses it, so the model says the same, with the fix
    message = refusal(lambda: as_images(np.zeros((8, 9, 3), np.uint8), DEFAULT_MAX_PIXELS))
    assert "(8, 9, 3)" in message and "image[None]" in message and "\n" not in message


def test_a_read_only_image_is_copied_and_a_writable_one_is_not():
    """np.asarray of a PIL image is read-only: torch warns on such an array (and must not write into it), so
    the served model copies it; an ordinary array goes through without a copy."""
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(1, 4, 5, 3)
    shared = as_images(image, DEFAULT_MAX_PIXELS)
    assert shared.shape == (1, 3, 4, 5) and np.shares_memory(shared.numpy(), image)
    image.flags.writeable = False
    copied = as_images(image, DEFAULT_MAX_PIXELS)
    assert not np.shares_memory(copied.numpy(), image) and torch.equal(copied, shared)


def log_classifier(root: Path) -> tuple[str, Path]:
    """A small classifier logged and registered in the default store under ``root`` (``root/mlflow.db``) the way a
    training run logs it (:meth:`cvflow.tracking.Tracker.log_model`: models from code, the signature, an input
    example): its registered URI and the local folder of the logged model."""
    from mlflow.tracking import MlflowClient

    from cvflow.models.resnet import build_resnet18
    from cvflow.tracking import Tracker

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = build_resnet18(2)
    path = save_model(root / "small.pt", net, ["cat", "dog"])
    servable = Servable("served-small", "classify", SMALL_SPEC, [torch.zeros(3, 6, 6, dtype=torch.uint8)])
    with pytest.MonkeyPatch.context() as patch:  # the store under root, whatever the caller's environment says
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("DVC_ROOT", raising=False)
        tracker = Tracker(root, "unit", "served")
        tracker.start()
        version = tracker.log_model(path, servable, ["cat", "dog"], architecture_modules(net))
        tracker.end()
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return f"models:/served-small/{version}", Path(client.get_model_version_download_uri("served-small", version))


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> Path:
    return log_classifier(tmp_path_factory.mktemp("served"))[1]


def load(folder: Path, monkeypatch, cap: str | None = None):
    """The logged model as a user loads it, with ``$CVFLOW_SERVE_MAX_PIXELS`` set to ``cap`` (None: unset)."""
    import mlflow.pyfunc

    if cap is None:
        monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    else:
        monkeypatch.setenv(MAX_PIXELS_ENV, cap)
    return mlflow.pyfunc.load_model(str(folder))


def images(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


def test_a_loaded_model_takes_a_batch_and_its_signature_refuses_a_bare_image(logged, monkeypatch):
    """A single H x W x 3 image cannot pass MLflow's tensor signature (the number of dimensions must match; -1
    only frees a dimension's size), so the documented form is a batch; a batch of one is answered."""
    model = load(logged, monkeypatch)
    table = model.predict(images(1, 6, 7, 3))
    assert list(table.columns) == ["label", "cat", "dog"] and len(table) == 1
    message = refusal(lambda: model.predict(images(6, 7, 3)))
    assert message.endswith("Shape of input (6, 7, 3) does not match expected shape (-1, -1, -1, 3).")


@pytest.mark.parametrize("shape, says", [((0, 6, 6, 3), "holds no image"),
                                         ((1, 0, 0, 3), "images of 0 x 0 pixels hold no pixels"),
                                         ((1, 5, 0, 3), "images of 5 x 0 pixels hold no pixels")])
def test_an_empty_batch_or_an_image_without_pixels_is_refused_in_one_line(logged, monkeypatch, shape, says):
    """Before: an empty batch answered an empty table, a zero-sized image a bare RuntimeError from the resize."""
    message = refusal(lambda: load(logged, monkeypatch).predict(np.zeros(shape, np.uint8)))
    assert says in message and str(shape) in message and "\n" not in message


def test_the_pixel_cap_refuses_an_image_or_a_batch_over_it_naming_size_cap_and_fix(logged, monkeypatch):
    model = load(logged, monkeypatch, cap="100")
    assert len(model.predict(images(1, 10, 10, 3))) == 1  # at the cap: answered
    message = refusal(lambda: model.predict(images(1, 11, 10, 3)))
    assert message == ("an image of 11 x 10 = 110 pixels is over the served model's cap of 100 pixels per request: "
                       "send a smaller image, or raise the cap with CVFLOW_SERVE_MAX_PIXELS=<pixels> in the "
                       "environment that loads the model")
    # each image under the cap, the request over it: the batch is what a server must hold
    message = refusal(lambda: model.predict(images(2, 8, 8, 3)))
    assert message.startswith("a batch of 2 images of 8 x 8 = 128 pixels in all is over the served model's cap of "
                              "100 pixels") and "fewer images per request" in message
    assert len(load(logged, monkeypatch, cap="128").predict(images(2, 8, 8, 3))) == 2  # raised: answered


def test_an_image_over_the_default_cap_is_refused_before_any_work(logged, monkeypatch):
    """40 megapixels unless set. The image is a broadcast view (no memory of its own): refusing it must copy
    nothing (tracemalloc sees numpy's allocations), where converting it copies 123 MB (a read-only array)."""
    model = load(logged, monkeypatch)
    side = 6400  # 6400 x 6400 = 40.96 megapixels
    huge = np.broadcast_to(np.zeros((1, 1, 1, 3), np.uint8), (1, side, side, 3))
    tracemalloc.start()
    try:
        message = refusal(lambda: model.predict(huge))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"an image of {side} x {side} = {side * side} pixels" in message
    assert f"cap of {DEFAULT_MAX_PIXELS} pixels" in message
    assert peak < 10_000_000, f"refusing the request allocated {peak} bytes"


@pytest.mark.parametrize("cap", ["abc", "0", "-5", "4.5e7"])
def test_a_bad_pixel_cap_stops_the_model_as_it_loads(logged, monkeypatch, cap):
    message = refusal(lambda: load(logged, monkeypatch, cap=cap))
    assert message == (f"CVFLOW_SERVE_MAX_PIXELS={cap!r} is not a number of pixels: set it to a whole number above 0 "
                       f"(the default is {DEFAULT_MAX_PIXELS}), or unset it")
