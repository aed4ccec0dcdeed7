"""`cvflow train TASK`: train a model with the engine, tracked in MLflow; resumes an interrupted run."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from cvflow.stages.common import ParamsOption, SetOption, load

app = typer.Typer(help="Train a model (checkpoint every epoch; rerun to resume; torchrun for several GPUs).",
                  no_args_is_help=True)


class HotdogVariant(str, Enum):
    finetune = "finetune"
    scratch = "scratch"


@app.command("hotdog")
def hotdog(
    variant: HotdogVariant = typer.Option(..., help="finetune: from the source model, new head at 10x lr; "
                                                     "scratch: random init, one lr"),
    epochs: Optional[int] = typer.Option(None, help="override the recipe's epochs"),
    lr: Optional[float] = typer.Option(None, help="override the recipe's learning rate"),
    batch_size: Optional[int] = typer.Option(None, help="override the recipe's (global) batch size"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """Fine-tune vs scratch on the hot dog set (book 13.2)."""
    from cvflow.pipelines import hotdog as pipeline

    v = variant.value
    params, root = load(params_file, overrides, **{
        f"hotdog.{v}.epochs": epochs, f"hotdog.{v}.optim.lr": lr, f"hotdog.{v}.batch_size": batch_size,
        "common.device": device,
    })
    pipeline.train(params, root, v)


@app.command("bananas")
def bananas(
    epochs: Optional[int] = typer.Option(None, help="override the recipe's epochs"),
    lr: Optional[float] = typer.Option(None, help="override the recipe's learning rate"),
    batch_size: Optional[int] = typer.Option(None, help="override the recipe's (global) batch size"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """TinySSD on the banana detection set (book 13.7)."""
    from cvflow.pipelines import bananas as pipeline

    params, root = load(params_file, overrides, **{
        "bananas.recipe.epochs": epochs, "bananas.recipe.optim.lr": lr, "bananas.recipe.batch_size": batch_size,
        "common.device": device,
    })
    pipeline.train(params, root)


class CifarVariant(str, Enum):
    augment = "augment"
    no_augment = "no-augment"


@app.command("cifar10")
def cifar10(
    variant: CifarVariant = typer.Option(..., help="augment: the book's train_augs (flip; the demo adds a padded "
                                                    "crop); no-augment: the same run without them"),
    epochs: Optional[int] = typer.Option(None, help="override the recipe's epochs"),
    lr: Optional[float] = typer.Option(None, help="override the recipe's learning rate"),
    batch_size: Optional[int] = typer.Option(None, help="override the recipe's (global) batch size"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """The CIFAR ResNet-18 with and without image augmentation (book 13.1)."""
    from cvflow.pipelines import cifar10_augmentation as pipeline

    params, root = load(params_file, overrides, **{
        "cifar10.recipe.epochs": epochs, "cifar10.recipe.optim.lr": lr, "cifar10.recipe.batch_size": batch_size,
        "common.device": device,
    })
    pipeline.train(params, root, variant.value)


class KaggleVariant(str, Enum):
    train = "train"
    train_valid = "train_valid"


@app.command("kaggle-cifar10")
def kaggle_cifar10(
    variant: KaggleVariant = typer.Option(..., help="train: on train, valid for model selection; train_valid: "
                                                     "the same recipe on all labelled images (the final model)"),
    epochs: Optional[int] = typer.Option(None, help="override the recipe's epochs"),
    lr: Optional[float] = typer.Option(None, help="override the recipe's learning rate"),
    batch_size: Optional[int] = typer.Option(None, help="override the recipe's (global) batch size"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """The CIFAR ResNet-18 on Kaggle's CIFAR-10 (book 13.13)."""
    from cvflow.pipelines import kaggle_cifar10 as pipeline

    params, root = load(params_file, overrides, **{
        "kaggle_cifar10.recipe.epochs": epochs, "kaggle_cifar10.recipe.optim.lr": lr,
        "kaggle_cifar10.recipe.batch_size": batch_size, "common.device": device,
    })
    pipeline.train(params, root, variant.value)


@app.command("kaggle-dogs")
def kaggle_dogs(
    variant: KaggleVariant = typer.Option(..., help="train: on train, valid for model selection; train_valid: "
                                                     "the same recipe on all labelled images (the final head)"),
    epochs: Optional[int] = typer.Option(None, help="override the recipe's epochs"),
    lr: Optional[float] = typer.Option(None, help="override the recipe's learning rate"),
    batch_size: Optional[int] = typer.Option(None, help="override the recipe's (global) batch size"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """The head on a frozen pretrained backbone's features, Kaggle's dog breeds (book 13.14)."""
    from cvflow.pipelines import kaggle_dogs as pipeline

    params, root = load(params_file, overrides, **{
        "kaggle_dogs.recipe.epochs": epochs, "kaggle_dogs.recipe.optim.lr": lr,
        "kaggle_dogs.recipe.batch_size": batch_size, "common.device": device,
    })
    pipeline.train(params, root, variant.value)


@app.command("voc")
def voc(
    epochs: Optional[int] = typer.Option(None, help="override the recipe's epochs"),
    lr: Optional[float] = typer.Option(None, help="override the recipe's learning rate"),
    batch_size: Optional[int] = typer.Option(None, help="override the recipe's (global) batch size"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N | mps"),
    params_file: Path = ParamsOption,
    overrides: Optional[list[str]] = SetOption,
) -> None:
    """The book's FCN on Pascal VOC2012 (book 13.11): random crops, ResNet-18 body, bilinear upsampling."""
    from cvflow.pipelines import voc as pipeline

    params, root = load(params_file, overrides, **{
        "voc.recipe.epochs": epochs, "voc.recipe.optim.lr": lr, "voc.recipe.batch_size": batch_size,
        "common.device": device,
    })
    pipeline.train(params, root)
