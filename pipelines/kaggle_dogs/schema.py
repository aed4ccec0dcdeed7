"""The params schema of Kaggle dog breeds (``params.yaml``'s ``kaggle_dogs`` section, one profile).

No stage imports this module to run (only for type hints): what a stage reads reaches it through the params
file, whose keys each DVC stage tracks, so editing the schema stales no stage by itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from cvflow.params import IMAGENET_MEAN, IMAGENET_STD, KaggleProfile, Recipe, Strict, TwinSize, check_weights


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
