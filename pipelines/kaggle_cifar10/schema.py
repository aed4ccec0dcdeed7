"""The params schema of Kaggle CIFAR-10 (``params.yaml``'s ``kaggle_cifar10`` section, one profile).

No stage imports this module to run (only for type hints): what a stage reads reaches it through the params
file, whose keys each DVC stage tracks, so editing the schema stales no stage by itself.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from cvflow.params import CifarNet, KaggleProfile, Recipe, Strict


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


class KaggleCifarProfile(KaggleProfile):
    """13.13: train on train (valid for selection), retrain on train_valid, predict test."""

    net: CifarNet
    transforms: KaggleCifarTransforms
    recipe: Recipe
