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

A registered model gets a new version only when its model file changed: each version is tagged
with the file's SHA-1 (``model_sha1``), and a file already registered is not registered again.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from cvflow.preprocess import Preprocess, as_images, inference_transform

KINDS = ("classify", "detect", "segment")

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
        self.net: torch.nn.Module | None = None
        self.backbone: torch.nn.Module | None = None

    def load_context(self, context) -> None:
        self.load(context.model_config, context.artifacts)

    def load(self, config: Mapping[str, Any], artifacts: Mapping[str, str]) -> "ImageModel":
        """Take ``config`` (:func:`model_config`) and rebuild the networks from the model files
        (``artifacts``: name -> path)."""
        from cvflow.models.files import load_model

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

        images = as_images(model_input)
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
