"""The params schema of image augmentation on CIFAR-10 (``params.yaml``'s ``cifar10`` section, one profile).

No stage imports this module to run (only for type hints): what a stage reads reaches it through the params
file, whose keys each DVC stage tracks, so editing the schema stales no stage by itself.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field

from cvflow.params import CifarNet, HubData, Recipe, Strict, TwinSize


class CifarData(HubData):
    source: Literal["demo", "torchvision", "local"]  # type: ignore[assignment]


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
