"""Models anyone can load and serve: MLflow ``pyfunc`` models that take decoded images.

Every final model of the chapter is logged as an MLflow ``pyfunc`` model named for what it is
(``hotdog-finetune``, ``bananas-tinyssd``, ...) and registered under that name. It takes what a
person has, decoded images: ``uint8`` RGB, a batch ``N x H x W x 3`` of any height and width. It
applies its own test transform and returns what a person wants:

- a classifier: a table with the class name (``label``) and one probability column per class;
- a detector (TinySSD): a row per box, ``image`` (its index in the batch), ``label``, ``score`` and
  ``xmin, ymin, xmax, ymax`` in the input image's pixels, after the evaluation's non-maximum
  suppression, keeping the boxes scoring at least ``conf_threshold`` (a parameter of the call,
  default the task's);
- a segmenter (FCN): the class index of every pixel, ``N x H x W`` ``uint8`` at the input's size.

The test transform is a small dict (:data:`Preprocess`) built by :func:`inference_transform`, the one
function the pipelines' evaluations build their test transforms with: a served model sees the
tensors evaluation feeds it. The network is the cvflow model file, an artifact of the MLflow
model, rebuilt by :func:`cvflow.models.files.load_model`, so loading needs cvflow installed
(``pip install -e .`` of this repository) and nothing else of it.

What a request may hold (:func:`as_images`, checked from the array's shape alone, before any copy, transform or
network runs): a batch ``N x H x W x 3`` of ``uint8``, at least one image, each at least 1 x 1, and at most
``CVFLOW_SERVE_MAX_PIXELS`` pixels in all (``N x H x W``; default 40 megapixels: one 40-megapixel photo, or 150
images of 512 x 512), so a server refuses a request it cannot hold instead of running out of memory on it. The cap
is the environment variable of the process that loads the model (``mlflow models serve``, or your Python), read
when the model loads: it is the operator's protection, so it is not a parameter of the call a client could raise.
It bounds the model's work, not the request's body: ``mlflow models serve`` reads and parses a whole JSON body before
the model sees it, bounded only in time (``--timeout``, 60 s), so a public server wants a body-size limit in a proxy
in front of it. Each refusal is one line, an ``MlflowException`` with ``INVALID_PARAMETER_VALUE``: HTTP 400 from
``mlflow models serve`` (whose answer puts the parsed data's repr before it: ``Failed to predict data '...'.``,
then ``Error: <the line>``).

A single ``H x W x 3`` image is a batch of one (``image[None]``; over HTTP ``{"inputs": [image]}``). It cannot be
accepted as it is without dropping the signature's input schema: MLflow's tensor signature checks the number of
dimensions exactly (``-1`` frees a dimension's size, not its presence), so MLflow refuses a bare ``H x W x 3``
before the model runs, with its own message (the data's repr, then ``Shape of input (H, W, 3) does not match
expected shape (-1, -1, -1, 3).``; ``MLFLOW_DISABLE_SCHEMA_DETAILS=true`` leaves one generic line).

A registered model gets a new version only when its model file changed: each version is tagged
with the file's SHA-1 (``model_sha1``), and a file already registered is not registered again.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from cvflow.preprocess import Preprocess, inference_transform

KINDS = ("classify", "detect", "segment")

#: The environment variable that sets the most pixels one request may hold (see the module docstring).
MAX_PIXELS_ENV = "CVFLOW_SERVE_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 40_000_000

@dataclass(frozen=True)
class Servable:
    """How one trained model is logged for serving (see the module docstring).

    ``name``: the registered model's name; ``register``: register it (the chapter's final models) or
    only log it with its run; ``examples``: real images of the data set (the input example);
    ``options``: the kind's settings (``detect``:
    ``nms_threshold`` and ``conf_threshold``; ``classify``: ``tta_flip``); ``backbone``: for a head
    trained on a frozen network's features, that network (``weights``: ``file`` or ``imagenet``,
    ``layer``, and ``path`` of the cvflow model file for ``file``). ``examples``: uint8 ``(3, H, W)`` tensors,
    as the readers hold them."""

    name: str
    kind: str
    preprocess: Preprocess
    examples: Sequence[torch.Tensor]
    register: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    backbone: Mapping[str, Any] | None = None
    modules: Sequence[str] = ()            # more modules to import at load (e.g. the backbone file's architecture)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"servable kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


def _architecture_module(arch: str) -> str:
    """The module that registers ``arch`` (imported again when the model is loaded elsewhere)."""
    from cvflow.models.files import _ARCHITECTURES

    return _ARCHITECTURES[arch].__module__


def refused(message: str) -> Exception:
    """A request (or a serving setting) the model refuses: MLflow's own error for a bad parameter value, which
    ``mlflow models serve`` answers as HTTP 400 with ``message``. The server answers any other exception with
    its generic "unexpected error" message, ours only inside a traceback."""
    from mlflow.exceptions import MlflowException

    return MlflowException.invalid_parameter_value(message)


def max_pixels() -> int:
    """The most pixels one request may hold: ``$CVFLOW_SERVE_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise refused(f"{MAX_PIXELS_ENV}={raw!r} is not a number of pixels: set it to a whole number above 0 "
                      f"(the default is {DEFAULT_MAX_PIXELS}), or unset it")
    return value


def as_images(model_input: Any, cap: int) -> torch.Tensor:
    """A request's images, uint8 ``N x H x W x 3``, as the ``N x 3 x H x W`` tensor the transforms take; a request
    that is not such a batch, holds no pixels, or holds more than ``cap`` pixels in all is refused in one line
    (:func:`refused`). Every check reads the array's shape and dtype only, so nothing is copied or computed for
    a request that is refused: the copy, the transform and the network come after."""
    array = np.asarray(model_input)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise refused(f"expected uint8 RGB images as a batch N x H x W x 3, got an array of shape {array.shape}: "
                      'send one image as a batch of one (image[None]; over HTTP {"inputs": [image]})')
    if array.dtype != np.uint8:
        raise refused(f"expected uint8 RGB images (0-255), got dtype {array.dtype}: send the decoded pixels "
                      "as uint8 (numpy.asarray(PIL.Image.open(path).convert('RGB')))")
    count, height, width, _ = array.shape
    if count == 0:
        raise refused(f"the request holds no image (a batch of shape {array.shape}): send at least one")
    if height == 0 or width == 0:
        raise refused(f"images of {height} x {width} pixels hold no pixels (a batch of shape {array.shape}): "
                      "send images at least 1 x 1")
    # the cap is on the whole request: N images each under it can still hold more than a server can (one size
    # per request, so an image over the cap is a request over it; the message names which)
    if count * height * width > cap:
        what, fix = ((f"an image of {height} x {width} = {height * width} pixels", "a smaller image")
                     if height * width > cap else
                     (f"a batch of {count} images of {height} x {width} = {count * height * width} pixels in all",
                      "fewer images per request"))
        raise refused(f"{what} is over the served model's cap of {cap} pixels per request: send {fix}, or raise "
                      f"the cap with {MAX_PIXELS_ENV}=<pixels> in the environment that loads the model")
    # a copy only when needed: torch warns on (and must not write into) a read-only array, such as
    # np.asarray of a PIL image
    return torch.from_numpy(np.require(array, requirements=("C", "W"))).permute(0, 3, 1, 2)


try:  # the pyfunc base class; cvflow's library imports without MLflow's model code otherwise
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover - MLflow is a dependency
    PythonModel = object  # type: ignore[misc,assignment]


class ImageModel(PythonModel):
    """The pyfunc model: uint8 images in, class names, boxes or masks out (see the module docstring).

    Logged as MLflow's *models from code* (:data:`MODEL_CODE` sets an empty one; nothing is pickled): what
    it is comes from the logged ``model_config`` (:func:`model_config`), its networks from the artifacts."""

    def __init__(self) -> None:
        self.kind, self.preprocess, self.classes, self.options = "", {}, [], {}
        self.max_pixels = DEFAULT_MAX_PIXELS
        self.net: torch.nn.Module | None = None
        self.backbone: torch.nn.Module | None = None

    def load_context(self, context) -> None:
        self.load(context.model_config, context.artifacts)

    def load(self, config: Mapping[str, Any], artifacts: Mapping[str, str]) -> "ImageModel":
        """Take ``config`` (:func:`model_config`) and rebuild the networks from the model files
        (``artifacts``: name -> path). The pixel cap is read here (:func:`max_pixels`): a bad setting stops a
        server as it starts, not at its first request."""
        from cvflow.models.files import load_model

        self.max_pixels = max_pixels()
        self.kind, self.preprocess = config["kind"], dict(config["preprocess"])
        self.classes, self.options = list(config["classes"]), dict(config.get("options") or {})
        for module in config["modules"]:  # registers the architectures the files name
            importlib.import_module(module)
        self.net = load_model(Path(artifacts["model"]))[0].eval()
        spec = config.get("backbone")
        if spec:
            from cvflow.models.features import FrozenBackbone, imagenet_resnet34

            net = (load_model(Path(artifacts["backbone"]))[0] if spec["weights"] == "file"
                   else imagenet_resnet34("backbone.weights"))
            self.backbone = FrozenBackbone(net, spec["layer"]).eval()
        return self

    def _forward(self, x: torch.Tensor) -> Any:
        if self.backbone is not None:
            x = self.backbone(x)
        return self.net(x)

    def predict(self, context, model_input: np.ndarray, params: dict[str, Any] | None = None):
        import pandas as pd

        images = as_images(model_input, self.max_pixels)
        height, width = images.shape[-2:]
        with torch.inference_mode():
            x = inference_transform(self.preprocess)(images)
            if self.kind == "segment":
                return self._forward(x).argmax(dim=1).to(torch.uint8).numpy()
            if self.kind == "classify":
                views = [x] + ([inference_transform(self.preprocess, mirrored=True)(images)]
                               if self.options.get("tta_flip") else [])
                probs = torch.stack([torch.softmax(self._forward(v).double(), dim=1) for v in views]).mean(dim=0)
                table = pd.DataFrame(probs.numpy(), columns=self.classes)
                table.insert(0, "label", [self.classes[i] for i in probs.argmax(dim=1).tolist()])
                return table
            from cvflow.detection.ssd import detect, detections

            conf = float((params or {}).get("conf_threshold", self.options["conf_threshold"]))
            rows = detect(tuple(o.float() for o in self._forward(x)), self.options["nms_threshold"])
            found = [(i, box) for i, image_rows in enumerate(rows)
                     for box in detections(image_rows, conf, width, height).tolist()]
            return pd.DataFrame([{"image": i, "label": self.classes[int(box[0])], "score": box[1],
                                  "xmin": box[2], "ymin": box[3], "xmax": box[4], "ymax": box[5]}
                                 for i, box in found],
                                columns=["image", "label", "score", "xmin", "ymin", "xmax", "ymax"])


#: The file MLflow logs as the model's code (models from code): it sets an :class:`ImageModel`.
MODEL_CODE = Path(__file__).with_name("served_model.py")


def model_config(servable: Servable, classes: Sequence[str], modules: Sequence[str]) -> dict[str, Any]:
    """What the logged model is, as its ``model_config``: kind, preprocessing, classes, options, backbone, and
    the modules registering its files' architectures."""
    backbone = {k: v for k, v in servable.backbone.items() if k != "path"} if servable.backbone else None
    return {"kind": servable.kind, "preprocess": dict(servable.preprocess), "classes": list(classes),
            "options": dict(servable.options), "backbone": backbone,
            "modules": sorted({*modules, *servable.modules})}


def artifacts(servable: Servable, model_file: Path) -> dict[str, str]:
    """The model files the logged model loads: the network and, for a head on a frozen network, that network."""
    files = {"model": str(model_file)}
    if servable.backbone and servable.backbone["weights"] == "file":
        files["backbone"] = str(servable.backbone["path"])
    return files


def signature(servable: Servable, classes: Sequence[str]):
    """The MLflow signature: uint8 ``N x H x W x 3`` in; a table or a mask out; ``conf_threshold`` for boxes."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    inputs = Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))])
    params = None
    if servable.kind == "classify":
        outputs = Schema([ColSpec("string", "label"), *(ColSpec("double", name) for name in classes)])
    elif servable.kind == "detect":
        outputs = Schema([ColSpec("long", "image"), ColSpec("string", "label"),
                          *(ColSpec("double", c) for c in ("score", "xmin", "ymin", "xmax", "ymax"))])
        params = ParamSchema([ParamSpec("conf_threshold", "double", float(servable.options["conf_threshold"]))])
    else:
        outputs = Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1))])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def requirements() -> list[str]:
    """The logged model's pip requirements: the pinned torch and torchvision (cvflow itself installed)."""
    import torchvision

    return [f"torch=={torch.__version__.split('+')[0]}", f"torchvision=={torchvision.__version__.split('+')[0]}"]
