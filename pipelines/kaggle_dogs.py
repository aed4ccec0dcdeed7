"""Kaggle dog breeds (book 13.14): a frozen pretrained backbone, a small head, the probability submission.

Stages (see ``dvc.yaml``)::

    fetch kaggle-dogs       -> data/kaggle-dogs/{train,test}/<id>.jpg, labels.csv, sample_submission.csv
    prepare kaggle-dogs     -> data/kaggle-dogs-prepared/{train,valid,train_valid}/<breed>/, test/unknown/
    features kaggle-dogs    -> data/features/kaggle-dogs.pt: the frozen backbone's features, computed once per
                               image and view (``views`` augmented views of each labelled image; the test
                               transform's view, and its mirror image with ``tta_flip``, of each valid and
                               test image)
    train kaggle-dogs --variant train        (the head on train; valid for model selection)
    train kaggle-dogs --variant train_valid  (the same recipe on train + valid, as the book retrains)
    predict kaggle-dogs     -> data/submissions/kaggle-dogs.csv (the train_valid head's softmax per test image)
    evaluate kaggle-dogs    -> metrics/kaggle-dogs.json (valid log loss, Kaggle's metric, and accuracy)
    submit kaggle-dogs      -> the Kaggle API (by hand, never from dvc repro)

The head trains on the cached features (``views: N``), or, with ``views: 0``, as the book does:
every epoch runs the backbone on freshly augmented images. Valid and test images always take
the test transform, which is deterministic, so their cached features are exactly what the
backbone gives on the fly. The demo has no ImageNet; its backbone is the hot dog pipeline's
``source`` model (a ResNet-18 pretrained there on generated food): ``backbone.weights``.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cvflow.params import (IMAGENET_MEAN, IMAGENET_STD, KaggleProfile, ParamsBase as Params, Recipe, Strict,
                           TwinSize, check_weights)
from cvflow.pipelines.task import (
    DATA_PARAMS, RUN_COMMON, Effect, Number, Section, Stage, Task, fetch_stage, prepare_stage, run_files, submit_stage,
)


# ----------------------------------------------------------------------------- params schema


class DogTwinSize(TwinSize):
    breeds: int = Field(10, ge=2, le=120, description="the first N of the 120 real breed names")


class DogTransforms(Strict):
    """The book's 13.14 transforms: RandomResizedCrop (scale and ratio), flip, colour jitter; Resize + CenterCrop."""

    train_crop: int = Field(224, ge=8, le=4096, description="RandomResizedCrop size (the book: 224)")
    train_scale: tuple[float, float] = Field((0.08, 1.0), description="its area range (the book: 0.08-1)")
    train_ratio: tuple[float, float] = Field((3 / 4, 4 / 3), description="its aspect-ratio range (the book: 3/4-4/3)")
    hflip: bool = True
    jitter: float = Field(0.4, ge=0, le=1, description="ColorJitter brightness = contrast = saturation (the book: 0.4)")
    test_resize: int = Field(256, ge=8, le=4096, description="Resize(r): the shorter side to r (the book: 256)")
    test_crop: int = Field(224, ge=8, le=4096, description="CenterCrop size (the book: 224)")
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @field_validator("train_scale", "train_ratio")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1]:
            raise ValueError("must be two numbers with 0 < low <= high")
        return value

    @model_validator(mode="after")
    def _fits(self) -> "DogTransforms":
        if self.train_scale[1] > 1:
            raise ValueError(f"train_scale ({self.train_scale[1]}) must not exceed 1")
        if self.test_crop > self.test_resize:
            raise ValueError(f"test_crop ({self.test_crop}) must not exceed test_resize ({self.test_resize})")
        return self


class DogBackbone(Strict):
    """The frozen feature extractor of 13.14 and which of its layers gives the features."""

    weights: str = Field(description=(
        "imagenet: torchvision's ResNet-34 with ResNet34_Weights.IMAGENET1K_V1 (the book) | source: the hot dog "
        "pipeline's data/models/hotdog/source.pt (the demo's offline stand-in) | PATH.pt: a cvflow model file"))
    layer: Literal["output", "penultimate"] = Field("output", description=(
        "output: the network's outputs are the features (the book's PyTorch code: ResNet-34's 1,000 ImageNet "
        "scores) | penultimate: the input of its output layer (the book's text and MXNet code: net.features)"))

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        return check_weights(value, ("imagenet", "source"), (".pt",))


class KaggleDogsProfile(KaggleProfile):
    """13.14: a frozen pretrained backbone, a small head trained on train (valid for selection), retrained on
    train_valid, softmax probabilities for every test image."""

    demo: DogTwinSize
    backbone: DogBackbone
    hidden: int = Field(256, ge=1, le=65_536, description="the head: Linear(features, hidden)-ReLU-Linear(hidden, "
                        "breeds) (the book: 256)")
    transforms: DogTransforms
    views: int = Field(0, ge=0, le=1000, description=(
        "0: the book's path, the backbone runs on freshly augmented images in every epoch | N: N augmented views "
        "of each training image through the backbone once (features-kaggle-dogs), the head trains on those"))
    tta_flip: bool = Field(False, description="average the softmax of each valid/test image and its mirror image "
                           "(the book: off)")
    recipe: Recipe


SAMPLE = "sample_submission.csv"
EXPERIMENT = "kaggle-dogs"
VARIANTS = ("train", "train_valid")
FINAL = "train_valid"  # the head the submission comes from: the one registered
SOURCE_MODEL = Path("data/models/hotdog/source.pt")  # backbone.weights: source (written by `cvflow pretrain hotdog`)
FEATURES_FORMAT = 1




def features_file(root: Path) -> Path:
    return root / "data" / "features" / "kaggle-dogs.pt"



def metrics_file(root: Path) -> Path:
    return root / "metrics" / "kaggle-dogs.json"


def run_paths(root: Path, variant: str):
    """Files of the run ``variant``: see :class:`cvflow.engine.run.RunPaths`."""
    from cvflow.engine.paths import RunPaths

    return RunPaths(root, EXPERIMENT, variant)


def competition():
    """Kaggle's ``dog-breed-identification`` in this project: a :class:`cvflow.competition.Competition`."""
    from cvflow.competition import Competition

    return Competition("dog-breed-identification", "kaggle-dogs", "labels.csv", "dog_tiny", "Kaggle dog breeds")


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.twins.dogs import DOG_BREEDS, generate_kaggle_dogs

    from cvflow.competition import fetch as fetch_files

    cfg = params.task("kaggle_dogs")
    return fetch_files(competition(), root, source or cfg.data.source, path or cfg.data.path, params.common.hub_url,
                       generate=lambda folder: generate_kaggle_dogs(
                           folder, DOG_BREEDS[: cfg.demo.breeds], cfg.demo.train, cfg.demo.test, cfg.demo.seed))


def prepare(params: Params, root: Path) -> dict:
    from cvflow.competition import prepare as reorganise

    cfg = params.task("kaggle_dogs")
    return reorganise(competition(), root, cfg.valid_ratio, params.common.seed, cfg.reorg)


# ----------------------------------------------------------------------------- the backbone and its features


def _test_spec(cfg) -> dict:
    """The book's 13.14 transform_test (Resize(r), CenterCrop(c), ToTensor, Normalize) as data."""
    t = cfg.transforms
    return {"resize": t.test_resize, "crop": t.test_crop, "scale": "unit", "mean": list(t.mean), "std": list(t.std)}


def _transforms(cfg):
    """The book's 13.14 transform_train, transform_test (:func:`_test_spec`), and transform_test mirrored (TTA),
    on uint8 tensors."""
    import torch
    from torchvision.transforms import v2

    from cvflow.preprocess import inference_transform

    t = cfg.transforms
    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(t.mean), list(t.std))]
    train = [v2.RandomResizedCrop(t.train_crop, scale=tuple(t.train_scale), ratio=tuple(t.train_ratio),
                                  antialias=True)]
    if t.hflip:
        train.append(v2.RandomHorizontalFlip())
    if t.jitter > 0:
        train.append(v2.ColorJitter(brightness=t.jitter, contrast=t.jitter, saturation=t.jitter))
    return (v2.Compose(train + finish), inference_transform(_test_spec(cfg)),
            inference_transform(_test_spec(cfg), mirrored=True))


def _servable(params: Params, root: Path, variant: str, identity: dict):
    """The head with its frozen backbone as one served model: images in, breed probabilities out (with the
    mirrored view averaged in when ``tta_flip``, as the submission). ``identity``: the backbone's, as the
    features cache records it (its ``arch`` says which module loading the file needs imported)."""
    from cvflow.data.readers.images import decode_all, list_images
    from cvflow.models.files import architecture_module
    import cvflow.models.resnet  # noqa: F401  (registers the architecture of the source model)
    from cvflow.serving import Servable

    cfg = params.task("kaggle_dogs")
    weights = cfg.backbone.weights
    backbone = {"weights": "imagenet", "layer": cfg.backbone.layer}
    modules: list[str] = []
    if weights != "imagenet":
        path = root / SOURCE_MODEL if weights == "source" else root / weights
        backbone.update(weights="file", path=path)
        modules = [architecture_module(identity["arch"])]
    split = competition().prepared_dir(root) / variant  # a labelled image: the input example
    first = next(images[0] for folder in sorted(split.iterdir()) if folder.is_dir() and (images := list_images(folder)))
    images, _ = decode_all([first], "error", str(first.parent))
    return Servable(f"{EXPERIMENT}-{variant}", "classify", _test_spec(cfg), images, register=variant == FINAL,
                    options={"tta_flip": cfg.tta_flip}, backbone=backbone, modules=modules)


def _backbone(params: Params, root: Path):
    """The frozen feature extractor ``backbone.weights`` names, and what identifies it (for the cache)."""
    from cvflow.errors import UserError
    from cvflow.fileio import sha1sum
    from cvflow.models.features import FrozenBackbone, imagenet_resnet34
    from cvflow.models.files import load_model
    import cvflow.models.resnet  # noqa: F401  (registers the architecture the model file names)

    cfg = params.task("kaggle_dogs")
    setting = f"kaggle_dogs.{params.profile}.backbone.weights"
    weights = cfg.backbone.weights
    if weights == "imagenet":
        net, identity = imagenet_resnet34(setting), {"weights": "imagenet", "arch": "resnet34",
                                                     "enum": "ResNet34_Weights.IMAGENET1K_V1"}
    else:
        path = root / SOURCE_MODEL if weights == "source" else root / weights
        if not path.exists():
            hint = "run `cvflow pretrain hotdog` first" if weights == "source" else "give an existing cvflow model file"
            raise UserError(f"{setting} = {weights}: {path} does not exist; {hint}")
        net, data = load_model(path)
        identity = {"weights": weights, "arch": data["arch"], "sha1": sha1sum(path)}
    return FrozenBackbone(net, cfg.backbone.layer), identity


def _features_config(params: Params, identity: dict) -> dict:
    """What the cached features depend on: a cache made otherwise is refused."""
    cfg = params.task("kaggle_dogs")
    return {"backbone": identity, "layer": cfg.backbone.layer, "views": cfg.views, "tta_flip": cfg.tta_flip,
            "transforms": cfg.transforms.model_dump(mode="json"), "seed": params.common.seed}


def _image_folder(params: Params, root: Path, split: str, transform, classes=None):
    """A prepared split (``train``, ``valid``, ``train_valid``) as an image folder, decoded once."""
    from cvflow.competition import split as prepared_split

    return prepared_split(competition(), root, split, transform, params.task("kaggle_dogs").reorg,
                          f"kaggle_dogs.{params.profile}.reorg", params.common, classes)


def features(params: Params, root: Path) -> Path:
    """Run the frozen backbone once per image and view; write ``data/features/kaggle-dogs.pt``:
    ``labelled`` (every train_valid image: name, label, ``views`` augmented views), ``valid`` and ``test``
    (the test transform's view, and its mirror image with ``tta_flip``)."""
    import torch

    from cvflow.data.readers.images import ImageIdFolder
    from cvflow.engine.runtime import Precision, resolve_device, seed_everything
    from cvflow.engine.features import extract_features
    from cvflow.engine.runtime import resolve_workers
    from cvflow.fileio import atomic_path

    cfg = params.task("kaggle_dogs")
    common = params.common
    device = resolve_device(common.device)
    run = dict(batch_size=256, device=device, precision=Precision.resolve(device, common.precision),
               num_workers=resolve_workers(common.num_workers, device))
    backbone, identity = _backbone(params, root)
    train_tf, test_tf, flip_tf = _transforms(cfg)
    seed_everything(common.seed)
    if cfg.views:
        labelled = _image_folder(params, root, "train_valid", train_tf)
        classes, names, labels = labelled.classes, [p.name for p in labelled.paths], labelled.targets
        views = torch.stack([extract_features(backbone, labelled, **run)[0] for _ in range(cfg.views)], dim=1)
    else:  # the book's path: training reads the images themselves, only their names and labels are kept here
        classes, names, labels = _labelled_files(root)
        views = torch.empty(len(names), 0, backbone.dim)
    valid = _image_folder(params, root, "valid", test_tf, classes)  # the same files as train_valid's: decoded once
    test = ImageIdFolder(competition().prepared_dir(root) / "test" / "unknown", test_tf, cache=common.image_cache,
                         cache_max_bytes=common.image_cache_mb * 2**20)
    cache: dict = {
        "format": FEATURES_FORMAT, "config": _features_config(params, identity), "dim": backbone.dim,
        "classes": classes, "labelled": {"names": names, "labels": labels, "views": views},
        "valid": {"names": [p.name for p in valid.paths], "labels": valid.targets},
        "test": {"ids": [str(i) for i in test.ids]},
    }
    for part, dataset in (("valid", valid), ("test", test)):
        cache[part]["test_view"] = extract_features(backbone, dataset, **run)[0]
        if cfg.tta_flip:
            dataset.transform = flip_tf
            cache[part]["flip_view"] = extract_features(backbone, dataset, **run)[0]
    path = features_file(root)
    # through a file object, as save_model: the zip's inner folder is then named the same on every run
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(cache, handle)
    info(f"features ({cfg.backbone.weights} backbone, {cfg.backbone.layer}, {backbone.dim} per image): "
         f"{len(names)} labelled images x {cfg.views} augmented views; {len(valid)} valid and {len(test)} test "
         f"images x {1 + cfg.tta_flip} test views -> {path}")
    return path


def _labelled_files(root: Path):
    """The classes, file names and labels of ``train_valid`` (as the image folder lists them), nothing decoded."""
    import torch

    from cvflow.data.readers.images import list_images
    from cvflow.errors import UserError

    folder = competition().prepared_dir(root) / "train_valid"
    if not folder.is_dir():
        raise UserError(f"{folder}: missing; run `cvflow prepare kaggle-dogs` first")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(p.name, k) for k, breed in enumerate(classes) for p in list_images(folder / breed)]
    return classes, [name for name, _ in files], torch.tensor([k for _, k in files], dtype=torch.long)


def _load_features(params: Params, root: Path) -> dict:
    """The cache, refused with one line when it was made with other settings or another backbone."""
    import torch

    from cvflow.errors import UserError

    path = features_file(root)
    if not path.exists():
        raise UserError(f"{path}: missing; run `cvflow features kaggle-dogs` first")
    try:
        cache = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise UserError(f"{path}: unreadable ({type(exc).__name__}); rerun `cvflow features kaggle-dogs`") from None
    if not isinstance(cache, dict) or cache.get("format") != FEATURES_FORMAT:
        raise UserError(f"{path}: not a feature cache of format {FEATURES_FORMAT}; rerun `cvflow features kaggle-dogs`")
    cached = cache["config"]
    wanted = _features_config(params, cached["backbone"])  # the backbone itself is checked where it is loaded
    differs = sorted(k for k in wanted if cached.get(k) != wanted[k])
    if differs:
        raise UserError(f"{path}: made with other {', '.join(differs)} than params.yaml; rerun "
                        "`cvflow features kaggle-dogs`")
    valid = competition().prepared_dir(root) / "valid"
    names = sorted(p.name for p in valid.glob("*/*")) if valid.is_dir() else []
    if names != sorted(cache["valid"]["names"]):
        raise UserError(f"{path}: made from another valid split than {valid}; rerun `cvflow features kaggle-dogs`")
    return cache


def _split(cache: dict, root: Path, split: str):
    """Rows of the cached labelled images that form ``split`` (train, train_valid), and their labels."""
    import torch

    from cvflow.data.readers.images import list_images
    from cvflow.errors import UserError

    row_of = {name: i for i, name in enumerate(cache["labelled"]["names"])}
    rows = []
    for breed in cache["classes"]:
        folder = competition().prepared_dir(root) / split / breed
        names = [p.name for p in list_images(folder)] if folder.is_dir() else []
        unknown = [n for n in names if n not in row_of]
        if unknown:
            raise UserError(f"{folder / unknown[0]}: not in {features_file(root)}; rerun `cvflow features kaggle-dogs`")
        rows += [row_of[n] for n in names]
    if not rows:
        folder = competition().prepared_dir(root) / split
        raise UserError(f"{folder}: no images; run `cvflow prepare kaggle-dogs` first")
    rows = torch.tensor(rows, dtype=torch.long)
    return rows, cache["labelled"]["labels"][rows]


# ----------------------------------------------------------------------------- training, prediction


def train(params: Params, root: Path, variant: str) -> dict:
    """The book's 13.14 head training: ``train`` (valid for model selection) or ``train_valid`` (the final head)."""
    from torch.utils.data import TensorDataset

    from cvflow.engine.trainer import ClassificationTask
    from cvflow.engine.features import BackboneTask, ViewFeatures
    from cvflow.engine.run import train_variant
    from cvflow.errors import UserError
    from cvflow.fileio import sha1sum
    from cvflow.models.features import feature_head
    from cvflow.pipelines.lineage import dvc_digests

    if variant not in VARIANTS:
        raise UserError(f"--variant {variant!r}: use one of {', '.join(VARIANTS)}")
    cfg = params.task("kaggle_dogs")
    cache = _load_features(params, root)
    classes, dim = list(cache["classes"]), int(cache["dim"])
    config = {"hidden": cfg.hidden, "views": cfg.views, "backbone": cache["config"]["backbone"],
              "layer": cfg.backbone.layer, "transforms": cfg.transforms.model_dump(mode="json"),
              "valid_ratio": cfg.valid_ratio, "data": cfg.data.model_dump(mode="json"),
              "demo": cfg.demo.model_dump(mode="json")}
    if cfg.views:  # the head trains on the cached features: one of each image's views per epoch
        rows, labels = _split(cache, root, variant)
        train_set = ViewFeatures(cache["labelled"]["views"][rows], labels)
        eval_set = TensorDataset(cache["valid"]["test_view"], cache["valid"]["labels"]) if variant == "train" else None
        task = ClassificationTask()
        config["features_sha1"] = sha1sum(features_file(root))
    else:  # the book: the backbone runs on every freshly augmented batch, every epoch
        backbone, identity = _backbone(params, root)
        if identity != cache["config"]["backbone"]:
            raise UserError(f"{features_file(root)}: made with another backbone; rerun `cvflow features kaggle-dogs`")
        train_tf, test_tf, _ = _transforms(cfg)
        train_set = _image_folder(params, root, variant, train_tf, classes)
        eval_set = _image_folder(params, root, "valid", test_tf, classes) if variant == "train" else None
        task = BackboneTask(backbone=backbone)
    prepared = "data/kaggle-dogs-prepared"
    result = train_variant(
        params, root, EXPERIMENT, variant, VARIANTS, recipe=cfg.recipe,
        data={"kaggle-dogs-prepared": competition().prepared_dir(root)},
        digests={"kaggle-dogs-prepared": dvc_digests(root, prepared).get(prepared, "")}, config=config,
        meta={"views": cfg.views}, build=lambda: feature_head(dim, len(classes), cfg.hidden), task=task,
        train_set=train_set, eval_set=eval_set, classes=classes, title=f"Kaggle dog breeds: {variant}",
        serve=_servable(params, root, variant, cache["config"]["backbone"]))
    if result.dist.is_main and "test_loss" in result.final:
        info(f"{variant}: valid log loss {result.final['test_loss']:.3f}, accuracy {result.final['test_acc']:.3f} "
             f"after {len(result.history)} epochs")
    return result.final


def _probabilities(head, part: dict, tta_flip: bool = False):
    """Softmax of the head on the cached test view of ``part`` (and its mirror view, averaged, with TTA), float64."""
    import torch

    views = [part["test_view"]] + ([part["flip_view"]] if tta_flip else [])
    head.eval()
    with torch.inference_mode():
        probs = [torch.softmax(head(view).double(), dim=1) for view in views]
    return torch.stack(probs).mean(dim=0)


def predict(params: Params, root: Path) -> Path:
    """Every test image through the ``train_valid`` head: the checked submission file, logged to its run."""
    from cvflow.data.readers.images import list_images
    from cvflow.data.submissions import image_ids, write_dog_submission
    from cvflow.fileio import sha1sum
    from cvflow.models.files import load_model
    import cvflow.models.features  # noqa: F401  (registers the architecture the model file names)
    from cvflow.tracking import find_run

    cfg = params.task("kaggle_dogs")
    cache = _load_features(params, root)
    model_file = run_paths(root, "train_valid").model
    head, data = load_model(model_file)
    probs = _probabilities(head, cache["test"], tta_flip=cfg.tta_flip)
    sample = competition().data_dir(root) / SAMPLE
    test_folder = competition().prepared_dir(root) / "test" / "unknown"
    path = write_dog_submission(cache["test"]["ids"], probs.numpy(), list(data["classes"]),
                                sample if sample.exists() else None, competition().submission_file(root),
                                expected_ids=image_ids(list_images(test_folder)))
    tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
    if tracker is not None:
        tracker.log_artifact(path, "submission")
    info(f"submission: {probs.shape[0]} test images x {probs.shape[1]} breeds -> {path}")
    return path


def evaluate(params: Params, root: Path) -> dict:
    """Valid log loss (Kaggle's metric, clipped) and accuracy of the ``train`` head, against guessing uniformly."""
    import math

    from cvflow.data.submissions import check_dog_submission, multiclass_log_loss
    from cvflow.fileio import sha1sum, write_json
    from cvflow.models.files import load_model
    import cvflow.models.features  # noqa: F401  (registers the architecture the model file names)
    from cvflow.tracking import find_run

    cfg = params.task("kaggle_dogs")
    cache = _load_features(params, root)
    model_file = run_paths(root, "train").model
    head, data = load_model(model_file)
    labels = cache["valid"]["labels"]
    probs = _probabilities(head, cache["valid"], tta_flip=cfg.tta_flip)
    breeds = len(data["classes"])
    results: dict = {"valid_log_loss": multiclass_log_loss(probs.numpy(), labels.numpy()),
                     "valid_acc": (probs.argmax(dim=1) == labels).double().mean().item(),
                     "valid_images": len(labels), "breeds": breeds,
                     "uniform_log_loss": math.log(breeds), "tta_flip": cfg.tta_flip}
    submission = competition().submission_file(root)
    if submission.exists():
        sample = competition().data_dir(root) / SAMPLE
        shape = check_dog_submission(submission, sample_submission=sample if sample.exists() else None)
        results.update(submission_rows=shape["rows"], submission_breeds=shape["breeds"])
    write_json(metrics_file(root), results)
    tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
    if tracker is not None:
        tracker.log_evaluation({k: v for k, v in results.items() if isinstance(v, float)},
                               step=int(data["meta"].get("epochs", 0)))
    info(f"Kaggle dog breeds: valid log loss {results['valid_log_loss']:.3f} (uniform guess "
         f"{results['uniform_log_loss']:.3f}), accuracy {results['valid_acc']:.3f} on {len(labels)} images")
    return results


def submit(params: Params, root: Path, file: Path | None = None, message: str | None = None) -> dict:
    """Send the submission (default ``data/submissions/kaggle-dogs.csv``) to Kaggle's ``dog-breed-identification``
    after checking it; the default message names the git commit and the MLflow run of the head that made it."""
    from cvflow.data.submissions import check_dog_submission

    sample = competition().data_dir(root) / SAMPLE
    check_dog_submission(file if file is not None else competition().submission_file(root),
                         sample_submission=sample if sample.exists() else None)
    from cvflow.competition import submit as send

    return send(competition(), root, file, message, model_file=run_paths(root, "train_valid").model)


#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
CHARTS = {"Kaggle dog breeds loss per epoch, train and valid (13.14; valid loss = the Kaggle log loss, unclipped)": {
    "template": "linear", "x": "epoch",
    "y": {f"metrics/{EXPERIMENT}/train_history.csv": ["train_loss", "test_loss"],
          f"metrics/{EXPERIMENT}/train_valid_history.csv": "train_loss"}}}

REPORT = (Section(
    "13.14", "Dog breed identification (ImageNet dogs) on Kaggle",
    "A ResNet-34 pretrained on ImageNet stays frozen; a small head on its outputs learns the 120 breeds, and "
    "the submission holds each test image's softmax over them (Kaggle scores the log loss). The book prints its "
    "run on the dog_tiny sample (demo = True).",
    numbers=(Number("train run: valid log loss", "metrics/kaggle-dogs.json:valid_log_loss", 1.545,
                    book_note="the book: dog_tiny, 10 epochs"),
             Number("train run: valid accuracy", "metrics/kaggle-dogs.json:valid_acc"),
             Number("log loss of a uniform guess, ln(breeds)", "metrics/kaggle-dogs.json:uniform_log_loss"),
             Number("train run: train loss, last epoch", f"metrics/{EXPERIMENT}/train.json:train_loss", 1.240),
             Number("train_valid run: train loss, last epoch", f"metrics/{EXPERIMENT}/train_valid.json:train_loss",
                    1.217),
             Number("submission rows", "metrics/kaggle-dogs.json:submission_rows", fmt=".0f")),
    effects=(Effect("the head learns: valid log loss below a uniform guess's",
                    "metrics/kaggle-dogs.json:valid_log_loss", "<", "metrics/kaggle-dogs.json:uniform_log_loss"),),
    charts=tuple(CHARTS), runs=(f"{EXPERIMENT}/train", f"{EXPERIMENT}/train_valid")),)

#: what predict and evaluate read: the feature cache's settings, checked against params.yaml before it is used
#: (_load_features), and the test-time flip
FEATURES_CHECKED = ("common.seed", "backbone.layer", "transforms", "views", "tta_flip")

TASK: Task[KaggleDogsProfile] = Task(
    name="kaggle-dogs", profile=KaggleDogsProfile, title="13.14 Kaggle dog breeds",
    stages=(
        fetch_stage(fetch, "data/kaggle-dogs", "demo | d2l | kaggle | local",
                    "Kaggle dog breeds (13.14) into data/kaggle-dogs/ (train/, test/, labels.csv)."),
        prepare_stage(prepare, "kaggle-dogs"),
        Stage("features", features, "data/features/kaggle-dogs.pt: `views` augmented views of each labelled image "
              "and the test view of every image (and its mirror with tta_flip), through the frozen backbone "
              "(book 13.14).", deps=("data/kaggle-dogs-prepared", str(SOURCE_MODEL)),
              params=("common.seed", "common.precision", "common.device", "common.num_workers", "reorg", "backbone",
                      "transforms", "views", "tta_flip"),
              outs=("data/features/kaggle-dogs.pt",)),
        Stage("train", train, "The head on a frozen pretrained backbone's features, Kaggle's dog breeds "
              "(book 13.14).", variants=VARIANTS, variant_help="train: on train, valid for model selection; "
              "train_valid: the same recipe on all labelled images (the final head)", recipe="recipe",
              deps=("data/features/kaggle-dogs.pt", "data/kaggle-dogs-prepared", str(SOURCE_MODEL)),
              params=(*RUN_COMMON, *DATA_PARAMS, "valid_ratio", "reorg", "backbone", "hidden", "transforms", "views",
                      "tta_flip", "recipe"), **run_files(EXPERIMENT), tracked=True),
        Stage("predict", predict, "data/submissions/kaggle-dogs.csv: the train_valid head's softmax for every "
              "test image, checked.", deps=("data/features/kaggle-dogs.pt", "data/kaggle-dogs",
                                            "data/kaggle-dogs-prepared", "data/models/kaggle-dogs/train_valid.pt"),
              params=FEATURES_CHECKED, outs=("data/submissions/kaggle-dogs.csv",), tracked=True),
        Stage("evaluate", evaluate, "metrics/kaggle-dogs.json: valid log loss (Kaggle's metric) and accuracy of "
              "the train head, and ln(breeds).",
              deps=("data/features/kaggle-dogs.pt", "data/kaggle-dogs", "data/kaggle-dogs-prepared",
                    "data/models/kaggle-dogs/train.pt", "data/submissions/kaggle-dogs.csv"),
              params=FEATURES_CHECKED, metrics=("metrics/kaggle-dogs.json",), tracked=True),
        submit_stage(submit, "dog-breed-identification (13.14)", "data/submissions/kaggle-dogs.csv",
                     "the git commit and the MLflow run of the head"),
    ),
    charts=CHARTS,
    report=REPORT,
)
