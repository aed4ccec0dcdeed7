"""``params.yaml``: the schema of every knob, validated as a whole when a stage loads it.

Layout::

    profile: demo            # the one switch: demo (offline, generated data) | real (downloads, the book's recipe)
    common: {...}            # seed, device, loaders, data hub URL
    hotdog:
      demo: {...}            # a full task profile
      real: {...}            # same schema, the book's values

Every section is strict: an unknown key, a wrong type or an out-of-range value raises
:class:`~cvflow.errors.ParamsError` with one line naming the key path, the bad value and
what is allowed. ``dvc.yaml`` tracks ``<task>.${profile}`` so editing one profile never
reruns the other's stages.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cvflow.errors import ParamsError

PROFILES = ("demo", "real")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Strict(BaseModel):
    """Base for every params section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# --------------------------------------------------------------------------- common


class Common(Strict):
    seed: int = Field(0, ge=0, description="seed for Python, NumPy and torch")
    device: str = Field("auto", description="auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 autocast on CUDA, fp32 elsewhere"
    )
    channels_last: Literal["auto", "on", "off"] = Field("auto", description="auto: on for CUDA")
    num_workers: Union[Literal["auto"], int] = Field(
        "auto", description="DataLoader worker processes; auto: several on CUDA, none on CPU (they would "
        "compete with training for the same cores)"
    )
    pin_memory: Literal["auto", "on", "off"] = Field("auto", description="auto: on for CUDA")
    image_cache: Literal["decoded", "none"] = Field(
        "decoded", description="image folders: decoded (full-size uint8 kept in memory, up to image_cache_mb; the "
        "rest decoded per sample) | none (every sample decoded in the loader, bounded memory: use num_workers >= 2)"
    )
    image_cache_mb: int = Field(1024, ge=0, le=1_048_576, description="the decoded cache's cap, MiB (0: no cache)")
    hub_url: str = Field(
        "http://d2l-data.s3-accelerate.amazonaws.com/",
        description="base URL of the d2l data hub; the environment variable CVFLOW_HUB_URL overrides it",
    )
    smoke: bool = Field(
        False, description="run every stage for seconds on tiny data: the top-level `smoke` section's values "
        "replace the active profile's (an install check; `dvc exp run -S common.smoke=true`)"
    )

    @field_validator("num_workers")
    @classmethod
    def _workers(cls, value: Union[str, int]) -> Union[str, int]:
        if value != "auto" and not 0 <= int(value) <= 64:
            raise ValueError("must be auto or a number of processes from 0 to 64")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return value

    @field_validator("hub_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "file://")):
            raise ValueError("must start with http://, https:// or file://")
        return value if value.endswith("/") else value + "/"


# --------------------------------------------------------------------------- shared building blocks


class Optim(Strict):
    """Optimizer and learning-rate schedule of one training run."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(gt=0, le=10)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    head_lr_mult: float = Field(
        1.0, gt=0, le=1000, description="learning-rate multiplier of the new output layer (the book: 10)"
    )
    scheduler: Literal["none", "cosine", "step", "onecycle"] = Field(
        "none", description="per-epoch cosine or step decay, or a per-step one-cycle schedule peaking at lr"
    )
    step_size: int = Field(1, ge=1, description="epochs between decays (scheduler: step)")
    gamma: float = Field(0.1, gt=0, le=1, description="decay factor (scheduler: step)")


class Recipe(Strict):
    """One training run: epochs, batch size, optimizer, and how a batch's losses are reduced."""

    epochs: int = Field(ge=1, le=10_000)
    batch_size: int = Field(ge=1, le=65_536)
    optim: Optim
    loss_reduction: Literal["mean", "sum"] = Field(
        "mean", description="the loss a batch back-propagates: the mean of its per-example losses, or their sum "
        "(the book's train_batch_ch13 sums, so its learning rates for 13.1, 13.2, 13.11, 13.13 and 13.14 assume "
        "sum; TinySSD in 13.7 takes the mean)"
    )


class ImageTransforms(Strict):
    """The book's classification transforms (13.2): RandomResizedCrop + flip; Resize + CenterCrop."""

    train_crop: int = Field(ge=8, le=4096, description="RandomResizedCrop size (the book: 224)")
    train_scale: tuple[float, float] = Field(
        (0.08, 1.0), description="RandomResizedCrop area range (torchvision's and the book's default: 0.08-1)"
    )
    test_resize: int = Field(ge=8, le=4096, description="Resize([r, r]) before the centre crop (the book: 256)")
    test_crop: int = Field(ge=8, le=4096, description="CenterCrop size (the book: 224)")
    hflip: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @model_validator(mode="after")
    def _crop_fits(self) -> "ImageTransforms":
        if self.test_crop > self.test_resize:
            raise ValueError(f"test_crop ({self.test_crop}) must not exceed test_resize ({self.test_resize})")
        return self

    @field_validator("train_scale")
    @classmethod
    def _scale(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] <= 1:
            raise ValueError("must be two numbers with 0 < low <= high <= 1")
        return value

    @field_validator("std")
    @classmethod
    def _std_positive(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) <= 0:
            raise ValueError("every std must be > 0")
        return value


# --------------------------------------------------------------------------- hot dog (13.2)


class HotdogData(Strict):
    source: Literal["demo", "d2l", "local"] = Field(
        description="demo: generated offline; d2l: the book's data hub (hotdog.zip, SHA-1 checked); "
        "local: a folder or archive you already have (path)"
    )
    path: Union[Path, None] = Field(None, description="folder or archive for source: local")
    on_corrupt: Literal["skip", "error"] = Field(
        "skip", description="what to do with unreadable images: skip them (and list them) or stop"
    )

    @model_validator(mode="after")
    def _path_for_local(self) -> "HotdogData":
        if self.source == "local" and self.path is None:
            raise ValueError("source: local needs a path (data.path here, or --path): a folder or archive of the data set")
        return self


class HotdogDemo(Strict):
    """Size of the generated hot dog twin (profile demo)."""

    train_per_class: int = Field(150, ge=2, le=100_000)
    test_per_class: int = Field(100, ge=2, le=100_000)
    min_side: int = Field(64, ge=16, le=2048, description="shortest image side, pixels")
    max_side: int = Field(160, ge=16, le=2048, description="longest image side, pixels")
    seed: int = Field(2013, ge=0)

    @model_validator(mode="after")
    def _sides(self) -> "HotdogDemo":
        if self.min_side > self.max_side:
            raise ValueError(f"min_side ({self.min_side}) must not exceed max_side ({self.max_side})")
        return self


class Pretrain(Strict):
    """The demo's source model: a ResNet-18 pretrained on a generated multi-class food set."""

    images_per_class: int = Field(300, ge=2, le=100_000)
    image_size: int = Field(64, ge=16, le=1024)
    recipe: Recipe
    seed: int = Field(1313, ge=0)


class Hotdog(Strict):
    data: HotdogData
    demo: HotdogDemo = HotdogDemo()
    transforms: ImageTransforms
    weights: str = Field(
        description="starting weights of the fine-tune run: imagenet (torchvision ResNet18_Weights.IMAGENET1K_V1) | "
        "source (pretrained by the pipeline on generated data) | none | PATH.pth"
    )
    pretrain: Pretrain
    finetune: Recipe
    scratch: Recipe
    grid_images: int = Field(16, ge=1, le=256, description="test images drawn with predicted and true labels")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        if value in ("imagenet", "source", "none") or value.endswith((".pth", ".pt")):
            return value
        raise ValueError("must be imagenet, source, none or a path ending in .pth/.pt")


class HotdogProfiles(Strict):
    demo: Hotdog
    real: Hotdog


# --------------------------------------------------------------------------- data sets of the other tasks


class HubData(Strict):
    """A data set on the book's data hub: generated (demo), downloaded (d2l) or your own copy (local)."""

    source: Literal["demo", "d2l", "local"]
    path: Union[Path, None] = Field(None, description="folder or archive for source: local")

    @model_validator(mode="after")
    def _path_for_local(self) -> "HubData":
        if self.source == "local" and self.path is None:
            raise ValueError("source: local needs a path (data.path here, or --path): a folder or archive of the data set")
        return self


class CifarData(HubData):
    source: Literal["demo", "torchvision", "local"]  # type: ignore[assignment]


class KaggleData(HubData):
    source: Literal["demo", "d2l", "kaggle", "local"] = Field(  # type: ignore[assignment]
        description="demo: generated; d2l: the book's tiny sample; kaggle: the full competition (Kaggle API); "
        "local: a folder or archive you have"
    )


class TwinSize(Strict):
    """Size of a generated twin."""

    train: int = Field(ge=1, le=1_000_000)
    test: int = Field(ge=1, le=1_000_000, description="images in the test (or validation) split")
    seed: int = Field(0, ge=0)


class DogTwinSize(TwinSize):
    breeds: int = Field(10, ge=2, le=120, description="the first N of the 120 real breed names")


class DatasetProfile(Strict):
    data: HubData
    demo: TwinSize


class BananasProfile(Strict):
    """Banana detection with TinySSD (13.6-13.7)."""

    data: HubData
    demo: TwinSize
    image_size: int = Field(256, ge=32, le=1024, description="training and evaluation resolution (the book: 256)")
    recipe: Recipe
    prior_prob: float | None = Field(None, gt=0, lt=1, description=(
        "start every anchor as an object with this probability (RetinaNet's prior init of the class "
        "biases; 0.01 is usual); null: PyTorch's default init, as the book"))
    augment: bool = Field(True, description="flips and box-keeping random crops (transforms.v2, boxes move too)")
    input_max: Literal[1, 255] = Field(1, description=(
        "the range of the float images the network is fed: 1 for [0, 1]; 255 for 0-255, as the book feeds "
        "them (its BananasDataset returns features.float())"))
    nms_threshold: float = Field(0.5, gt=0, le=1, description="IoU above which NMS suppresses a box")
    conf_threshold: float = Field(0.9, ge=0, le=1, description="boxes drawn in the predictions picture (the book: 0.9)")
    grid_images: int = Field(8, ge=1, le=64, description="validation images drawn with their predicted boxes")


class CifarNet(Strict):
    """The book's CIFAR ResNet-18 (``d2l.resnet18(10, 3)``)."""

    width: int = Field(64, ge=4, le=512, description="channels of the first stage, doubled per stage (the book: 64)")
    init: Literal["default", "xavier"] = Field(
        "default", description="default: PyTorch's; xavier: Xavier-uniform conv and linear weights (13.1's init_weights)"
    )


class CifarAugment(Strict):
    """The train transforms of the ``augment`` run (13.1); the ``no-augment`` run uses none of them."""

    hflip: bool = Field(True, description="RandomHorizontalFlip (the book's 13.1 train_augs)")
    crop_padding: int = Field(0, ge=0, le=16, description="RandomCrop(32, padding=N) as well; 0: none (the book)")


class CifarProfile(Strict):
    """13.1 image augmentation: CIFAR-10, the book's ResNet-18 trained with and without augmentation."""

    data: CifarData
    demo: TwinSize
    train_images: Union[int, None] = Field(None, ge=10, description="the first N training images; null: all")
    net: CifarNet
    augment: CifarAugment
    recipe: Recipe


class KaggleCifarTransforms(Strict):
    """The book's 13.13 transforms: Resize, a square RandomResizedCrop, flip, CIFAR-10 normalisation."""

    resize: int = Field(40, ge=8, le=1024, description="Resize(r) before the crop (the book: 40)")
    crop: int = Field(32, ge=8, le=1024, description="RandomResizedCrop size (the book: 32)")
    crop_scale: tuple[float, float] = Field((0.64, 1.0), description="its area range (the book: 0.64-1, ratio 1)")
    hflip: bool = True
    mean: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
    std: tuple[float, float, float] = (0.2023, 0.1994, 0.2010)

    @field_validator("crop_scale")
    @classmethod
    def _scale(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] <= 1:
            raise ValueError("must be two numbers with 0 < low <= high <= 1")
        return value


class PhotosProfile(Strict):
    data: HubData
    seed: int = Field(0, ge=0, description="seed of the generated stand-ins (source: demo)")


class KaggleProfile(Strict):
    data: KaggleData
    demo: TwinSize
    valid_ratio: float = Field(gt=0, lt=1, description="the book's valid_ratio (13.13: 0.1)")
    reorg: Literal["link", "manifest"] = Field(
        "link", description="link: the book's folders as hard links; manifest: CSV lists, no per-file work"
    )


class KaggleCifarProfile(KaggleProfile):
    """13.13: train on train (valid for selection), retrain on train_valid, predict test."""

    net: CifarNet
    transforms: KaggleCifarTransforms
    recipe: Recipe


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
        if value in ("imagenet", "source") or value.endswith(".pt"):
            return value
        raise ValueError("must be imagenet, source or the path of a cvflow model file (.pt)")


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



# --------------------------------------------------------------------------- style transfer (13.12)


class StyleNet(Strict):
    """The feature network: VGG-19's ``features`` up to the last layer used."""

    weights: str = Field(description=(
        "imagenet (torchvision VGG19_Weights.IMAGENET1K_V1, the book's) | random (torchvision's VGG initialisation, "
        "seeded by common.seed) | PATH.pth (a VGG-19 state dict)"))
    width: int = Field(64, ge=4, le=64, description="channels of the first block, the others scaled alike (64: VGG-19)")
    content_layers: list[int] = Field([25], min_length=1, description="indices in VGG-19's features (the book: [25])")
    style_layers: list[int] = Field([0, 5, 10, 19, 28], min_length=1,
                                    description="indices in VGG-19's features (the book: [0, 5, 10, 19, 28])")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        if value in ("imagenet", "random") or value.endswith((".pth", ".pt")):
            return value
        raise ValueError("must be imagenet, random or a path ending in .pth/.pt")

    @field_validator("content_layers", "style_layers")
    @classmethod
    def _layers(cls, value: list[int]) -> list[int]:
        if not all(0 <= i <= 36 for i in value):
            raise ValueError("VGG-19's features are layers 0 to 36")
        return value


class StyleLossWeights(Strict):
    content_weight: float = Field(1.0, ge=0)
    style_weight: float = Field(1e4, ge=0, description=(
        "the EFFECTIVE style weight: the book writes 1e3 but adds sum(10 * styles_l + ...), the style list "
        "repeated ten times, so its total loss weighs style by 1e4"))
    tv_weight: float = Field(10.0, ge=0)


class StyleOptim(Strict):
    name: Literal["adam", "lbfgs"] = Field(description="adam: the book's, with StepLR | lbfgs: torch.optim.LBFGS, "
                                                        "one iteration per step (Gatys et al.)")
    lr: float = Field(gt=0, le=10)
    step_size: int = Field(50, ge=1, description="adam: steps between learning-rate decays (the book: 50)")
    gamma: float = Field(0.8, gt=0, le=1, description="adam: the decay factor (the book: 0.8)")
    history_size: int = Field(100, ge=1, le=1000, description="lbfgs: curvature pairs kept")
    line_search: Union[Literal["strong_wolfe"], None] = Field(None, description=(
        "lbfgs: null (a step of lr along the L-BFGS direction, as torch.optim.LBFGS by default) | strong_wolfe"))


class StyleProfile(Strict):
    """13.12 neural style transfer: the content photo in the style of the style photo."""

    content: str = Field("rainier.jpg", description="the content image, a file in data/photos/")
    style: str = Field("autumn-oak.jpg", description="the style image, a file in data/photos/")
    net: StyleNet
    loss: StyleLossWeights
    optim: StyleOptim
    scales: list[tuple[int, int]] = Field(min_length=1, description=(
        "(height, width) per scale, coarse to fine: each next scale starts from the previous result, upscaled"))
    steps: Union[int, list[int]] = Field(description="optimisation steps per scale (one number: the same for each)")
    checkpoint_every: int = Field(50, ge=1, le=100_000, description="steps between checkpoints")
    snapshot_every: int = Field(50, ge=0, le=100_000, description="steps between images logged to MLflow (0: none)")

    @field_validator("scales")
    @classmethod
    def _scales(cls, value: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if not all(32 <= side <= 8192 for shape in value for side in shape):
            raise ValueError("every side must be 32 to 8192 pixels (VGG-19 halves it four times before layer 28)")
        return value

    @model_validator(mode="after")
    def _steps(self) -> "StyleProfile":
        steps = [self.steps] if isinstance(self.steps, int) else self.steps
        if not all(1 <= n <= 1_000_000 for n in steps):
            raise ValueError(f"steps ({self.steps}) must be from 1 to 1,000,000")
        if isinstance(self.steps, list) and len(self.steps) != len(self.scales):
            raise ValueError(f"steps lists {len(self.steps)} numbers for {len(self.scales)} scales")
        return self

    def steps_per_scale(self) -> list[int]:
        return [self.steps] * len(self.scales) if isinstance(self.steps, int) else list(self.steps)

class VocTwinSize(TwinSize):
    """The generated VOC twin: image counts and the range of its image sizes."""

    width: tuple[int, int] = Field((480, 500), description="smallest and largest image width, pixels")
    height: tuple[int, int] = Field((320, 500), description="smallest and largest image height, pixels")

    @field_validator("width", "height")
    @classmethod
    def _range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 16 <= value[0] <= value[1] <= 4096:
            raise ValueError("must be [min, max] with 16 <= min <= max <= 4096")
        return value


class VocProfile(Strict):
    """13.9-13.11 semantic segmentation: Pascal VOC2012 and the book's FCN."""

    data: HubData
    demo: VocTwinSize
    crop_size: tuple[int, int] = Field(description=(
        "(height, width) of the random crops trained on, both multiples of 32 (the FCN's stride); images "
        "smaller are dropped, as the book does (the book: 320x480)"))
    boundary: Literal["background", "ignore"] = Field(description=(
        "the 255 band around objects in the loss and the pixel accuracy: background (class 0, as the book's "
        "voc_label_indices maps it) | ignore (left out, as the field does); IoU always ignores it"))
    weights: str = Field(description=(
        "the ResNet-18 body's starting weights: imagenet (torchvision ResNet18_Weights.IMAGENET1K_V1) | source "
        "(the hot dog pipeline's model pretrained on generated food, data/models/hotdog/source.pt) | none | PATH.pth"))
    recipe: Recipe
    grid_images: int = Field(6, ge=1, le=64, description="validation images drawn as image | prediction | truth")

    @field_validator("crop_size")
    @classmethod
    def _crop(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 32 or value[0] % 32 or value[1] % 32:
            raise ValueError("height and width must be multiples of 32 (the FCN's stride), e.g. [320, 480]")
        return value

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        if value in ("imagenet", "source", "none") or value.endswith((".pth", ".pt")):
            return value
        raise ValueError("must be imagenet, source, none or a path ending in .pth/.pt")


def _profiles(model: type[BaseModel]) -> type[BaseModel]:
    """``{demo: model, real: model}``"""
    from pydantic import create_model

    return create_model(f"{model.__name__}s", __base__=Strict, demo=(model, ...), real=(model, ...))


DatasetProfiles = _profiles(DatasetProfile)
BananasProfiles = _profiles(BananasProfile)
CifarProfiles = _profiles(CifarProfile)
PhotosProfiles = _profiles(PhotosProfile)
KaggleCifarProfiles = _profiles(KaggleCifarProfile)
KaggleDogsProfiles = _profiles(KaggleDogsProfile)
StyleProfiles = _profiles(StyleProfile)
VocProfiles = _profiles(VocProfile)


# --------------------------------------------------------------------------- the whole file


class Params(Strict):
    profile: Literal["demo", "real"] = Field(
        "demo", description="the one switch: demo (offline, generated data) | real (real data, the book's recipe)"
    )
    common: Common = Common()
    hotdog: HotdogProfiles
    photos: PhotosProfiles
    bananas: BananasProfiles
    voc: VocProfiles
    cifar10: CifarProfiles
    kaggle_cifar10: KaggleCifarProfiles
    kaggle_dogs: KaggleDogsProfiles
    style: StyleProfiles
    smoke: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per task, values that replace the active profile's when common.smoke "
        "is true (same keys as the profile's section)"
    )

    def task(self, name: str) -> Any:
        """The active profile's section of a task, e.g. ``params.task('hotdog')``."""
        return getattr(getattr(self, name), self.profile)


# --------------------------------------------------------------------------- loading


def _describe_allowed(model: type[BaseModel], loc: tuple) -> str:
    """For an unknown key at ``loc``, list the keys its parent section allows."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            return ""
        field = current.model_fields.get(part)
        if field is None:
            return ""
        annotation = field.annotation
        current = annotation if isinstance(annotation, type) else None
        if current is None:
            return ""
    if isinstance(current, type) and issubclass(current, BaseModel):
        return "allowed keys: " + ", ".join(current.model_fields)
    return ""


def format_validation_error(error: ValidationError, source: str, model: type[BaseModel] = Params) -> str:
    """One line: ``params.yaml: hotdog.demo.finetune.optim.lr = -1: must be greater than 0 (...)``."""
    parts = []
    for item in error.errors():
        loc = tuple(item["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if item["type"] == "extra_forbidden":
            allowed = _describe_allowed(model, loc)
            parts.append(f"{key}: unknown key" + (f" ({allowed})" if allowed else ""))
            continue
        if item["type"] == "missing":
            parts.append(f"{key}: missing (required)")
            continue
        msg = item["msg"].removeprefix("Value error, ")
        value = item.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        if len(shown) > 60:
            shown = shown[:57] + "..."
        parts.append(f"{key} = {shown}: {msg}")
    more = f" (and {len(parts) - 3} more)" if len(parts) > 3 else ""
    return f"{source}: " + "; ".join(parts[:3]) + more


def set_dotted(data: dict, dotted_key: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts, creating sections as needed."""
    parts = dotted_key.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node, dict):
            raise ParamsError(f"--set {dotted_key}: {part!r} is not a section")
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        raise ParamsError(f"--set {dotted_key}: cannot set a key inside a value")
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``key.path=value`` with the value parsed as YAML (so ``1e-3``, ``true``, ``[1, 2]`` work)."""
    if "=" not in text:
        raise ParamsError(f"--set {text!r}: expected KEY=VALUE, e.g. --set hotdog.demo.finetune.epochs=2")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ParamsError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ParamsError(f"{path}: no such file; run cvflow from the project folder or pass --params PATH")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParamsError(f"{path}:{where}: not valid YAML ({problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def validate(data: dict, source: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, source)) from None


def _overlay(target: dict, values: dict, where: str, source: str) -> None:
    """Replace values of ``target`` by ``values``'s, key by key; a key the target lacks is an error
    (a typo in the smoke section must not silently leave a stage at full size)."""
    for key, value in values.items():
        if not isinstance(target, dict) or key not in target:
            raise ParamsError(f"{source}: smoke.{where}.{key}: no such key in {where.split('.')[0]}'s profile; "
                              "use the keys of the profile's section")
        if isinstance(value, dict) and isinstance(target[key], dict):
            _overlay(target[key], value, f"{where}.{key}", source)
        else:
            target[key] = copy.deepcopy(value)


def apply_smoke(data: dict, source: str = "params.yaml") -> dict:
    """``data`` with the ``smoke`` section laid over each task's active profile (a copy; checked even
    when ``common.smoke`` is false, so a typo shows before the switch is used)."""
    smoke = data.get("smoke") or {}
    if not isinstance(smoke, dict):
        raise ParamsError(f"{source}: smoke: must be a mapping of task names to values")
    merged = copy.deepcopy(data)
    profile = data.get("profile", "demo")
    for task, values in smoke.items():
        section = merged.get(task)
        if not isinstance(section, dict) or not isinstance(section.get(profile), dict):
            raise ParamsError(f"{source}: smoke.{task}: no task {task!r} with a {profile} profile")
        if not isinstance(values, dict):
            raise ParamsError(f"{source}: smoke.{task}: must be a mapping of the profile's keys to values")
        _overlay(section[profile], values, task, source)
    return merged


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None,
                data: dict | None = None) -> Params:
    """Read (unless ``data``, the file already read, is given), apply ``--set`` overrides, and
    validate the WHOLE file. With ``common.smoke: true``, the ``smoke`` section replaces values of
    each task's active profile first (``--set`` still wins)."""
    path = Path(path)
    data = read_yaml(path) if data is None else data
    source = str(path) + (" (with --set overrides)" if overrides else "")

    def overridden(values: dict) -> dict:
        if overrides:
            values = copy.deepcopy(values)
            for text in overrides:
                set_dotted(values, *parse_override(text))
        return values

    data = overridden(data)
    smoked = apply_smoke(data, source)
    if (data.get("common") or {}).get("smoke") is True:
        data = overridden(smoked)
    return validate(data, source)
