"""The params schema of banana detection (``params.yaml``'s ``bananas`` section, one profile).

No stage imports this module to run (only for type hints): what a stage reads reaches it through the params
file, whose keys each DVC stage tracks, so editing the schema stales no stage by itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cvflow.params import HubData, Recipe, Strict, TwinSize


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
