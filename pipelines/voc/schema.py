"""The params schema of semantic segmentation on VOC (``params.yaml``'s ``voc`` section, one profile).

No stage imports this module to run (only for type hints): what a stage reads reaches it through the params
file, whose keys each DVC stage tracks, so editing the schema stales no stage by itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from cvflow.params import HubData, Recipe, Strict, TwinSize, check_weights


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
        return check_weights(value, ("imagenet", "source", "none"))
