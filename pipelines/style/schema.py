"""The params schema of neural style transfer (``params.yaml``'s ``style`` section, one profile).

No stage imports this module to run (only for type hints): what a stage reads reaches it through the params
file, whose keys each DVC stage tracks, so editing the schema stales no stage by itself.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field, field_validator, model_validator

from cvflow.params import Strict, check_weights


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
        return check_weights(value, ("imagenet", "random"))

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
