"""The params schema of hot dog fine-tuning (``params.yaml``'s ``hotdog`` section, one profile).

No stage imports this module to run (only for type hints): what a stage reads reaches it through the params
file, whose keys each DVC stage tracks, so editing the schema (a new variant's field) stales no stage by itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from cvflow.params import FrozenRecipe, HubData, ImageTransforms, Recipe, Strict, check_weights


class HotdogData(HubData):
    source: Literal["demo", "d2l", "local"] = Field(
        description="demo: generated offline; d2l: the book's data hub (hotdog.zip, SHA-1 checked); "
        "local: a folder or archive you already have (path)"
    )
    on_corrupt: Literal["skip", "error"] = Field(
        "skip", description="what to do with unreadable images: skip them (and list them) or stop"
    )


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


class Start(Strict):
    start: Literal["source", "random"] = Field(
        description="what the run starts from: source (the pretrained model's body and a new head: the book's "
        "finetune_net) | random (the same network, random weights: scratch_net)"
    )


class Run(Recipe, Start):
    """One hot dog variant's run: its recipe and what it starts from."""


class FrozenRun(FrozenRecipe, Start):
    """A variant that keeps modules of its start as they are (the linear probe)."""

    @model_validator(mode="after")
    def _from_source(self) -> "FrozenRun":
        if self.start != "source":
            raise ValueError("freeze keeps the source's modules: it needs start: source")
        return self


class Hotdog(Strict):
    data: HotdogData
    demo: HotdogDemo = HotdogDemo()
    transforms: ImageTransforms
    weights: str = Field(
        description="starting weights of the fine-tune run: imagenet (torchvision ResNet18_Weights.IMAGENET1K_V1) | "
        "source (pretrained by the pipeline on generated data) | none | PATH.pth"
    )
    pretrain: Pretrain
    finetune: Run
    scratch: Run
    probe: FrozenRun = Field(description="the linear probe: the fine-tune's start, its body (freeze) kept as the "
                             "source's, only the new head trained")
    grid_images: int = Field(16, ge=1, le=256, description="test images drawn with predicted and true labels")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        return check_weights(value, ("imagenet", "source", "none"))
