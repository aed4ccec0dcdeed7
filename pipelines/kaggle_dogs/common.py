"""What the Kaggle dog breeds stages share: the competition's files, the runs' files, the frozen backbone, the
book's transforms, the prepared splits and the feature cache they read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.engine.paths import RunPaths

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params
    from cvflow.pipelines.kaggle_dogs.schema import KaggleDogsProfile

SAMPLE = "sample_submission.csv"
EXPERIMENT = "kaggle-dogs"
SOURCE_MODEL = Path("data/models/hotdog/source.pt")  # backbone.weights: source (written by `cvflow pretrain hotdog`)
FEATURES_FORMAT = 1


def cfg(params: Params) -> KaggleDogsProfile:
    """The active profile's ``kaggle_dogs`` section."""
    return params.task("kaggle_dogs")


def features_file(root: Path) -> Path:
    return root / "data" / "features" / "kaggle-dogs.pt"


def metrics_file(root: Path) -> Path:
    return root / "metrics" / "kaggle-dogs.json"


def run_paths(root: Path, variant: str) -> RunPaths:
    """Files of the run ``variant``: see :class:`cvflow.engine.paths.RunPaths`."""
    return RunPaths(root, EXPERIMENT, variant)


def competition():
    """Kaggle's ``dog-breed-identification`` in this project: a :class:`cvflow.competition.Competition`."""
    from cvflow.competition import Competition

    return Competition("dog-breed-identification", "kaggle-dogs", "labels.csv", "dog_tiny", "Kaggle dog breeds")


# ----------------------------------------------------------------------------- the backbone and its features


def test_spec(cfg) -> dict:
    """The book's 13.14 transform_test (Resize(r), CenterCrop(c), ToTensor, Normalize) as data."""
    t = cfg.transforms
    return {"resize": t.test_resize, "crop": t.test_crop, "scale": "unit", "mean": list(t.mean), "std": list(t.std)}


def transforms(cfg):
    """The book's 13.14 transform_train, transform_test (:func:`test_spec`), and transform_test mirrored (TTA),
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
    return (v2.Compose(train + finish), inference_transform(test_spec(cfg)),
            inference_transform(test_spec(cfg), mirrored=True))


def frozen_backbone(params: Params, root: Path):
    """The frozen feature extractor ``backbone.weights`` names, and what identifies it (for the cache)."""
    from cvflow.errors import UserError
    from cvflow.fileio import sha1sum
    from cvflow.models.features import FrozenBackbone, imagenet_resnet34
    from cvflow.models.files import load_model
    import cvflow.models.resnet  # noqa: F401  (registers the architecture the model file names)

    backbone = cfg(params).backbone
    setting = f"kaggle_dogs.{params.profile}.backbone.weights"
    weights = backbone.weights
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
    return FrozenBackbone(net, backbone.layer), identity


def features_config(params: Params, identity: dict) -> dict:
    """What the cached features depend on: a cache made otherwise is refused."""
    section = cfg(params)
    return {"backbone": identity, "layer": section.backbone.layer, "views": section.views,
            "tta_flip": section.tta_flip, "transforms": section.transforms.model_dump(mode="json"),
            "seed": params.common.seed}


def image_folder(params: Params, root: Path, split: str, transform, classes=None):
    """A prepared split (``train``, ``valid``, ``train_valid``) as an image folder, decoded once."""
    from cvflow.competition import split as prepared_split

    return prepared_split(competition(), root, split, transform, cfg(params).reorg,
                          f"kaggle_dogs.{params.profile}.reorg", params.common, classes)


def load_features(params: Params, root: Path) -> dict:
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
    wanted = features_config(params, cached["backbone"])  # the backbone itself is checked where it is loaded
    differs = sorted(k for k in wanted if cached.get(k) != wanted[k])
    if differs:
        raise UserError(f"{path}: made with other {', '.join(differs)} than params.yaml; rerun "
                        "`cvflow features kaggle-dogs`")
    valid = competition().prepared_dir(root) / "valid"
    names = sorted(p.name for p in valid.glob("*/*")) if valid.is_dir() else []
    if names != sorted(cache["valid"]["names"]):
        raise UserError(f"{path}: made from another valid split than {valid}; rerun `cvflow features kaggle-dogs`")
    return cache


def probabilities(head, part: dict, tta_flip: bool = False):
    """Softmax of the head on the cached test view of ``part`` (and its mirror view, averaged, with TTA), float64."""
    import torch

    views = [part["test_view"]] + ([part["flip_view"]] if tta_flip else [])
    head.eval()
    with torch.inference_mode():
        probs = [torch.softmax(head(view).double(), dim=1) for view in views]
    return torch.stack(probs).mean(dim=0)
