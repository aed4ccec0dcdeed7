"""`cvflow fetch DATASET`: download, verify and unpack a data set, or generate its offline twin."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cvflow.stages.common import ParamsOption, SetOption, load

app = typer.Typer(help="Get a data set into data/: download (SHA-1 checked), a local copy, or the offline demo twin.",
                  no_args_is_help=True)


def _register(name: str, section: str, module: str, sources: str, summary: str) -> None:
    """One `cvflow fetch NAME` per data set, all with the same options."""

    def command(
        source: Optional[str] = typer.Option(None, help=f"{sources} (default: {section}.<profile>.data.source)"),
        path: Optional[Path] = typer.Option(None, help="folder or archive for --source local"),
        params_file: Path = ParamsOption,
        overrides: Optional[list[str]] = SetOption,
    ) -> None:
        import importlib

        pipeline = importlib.import_module(f"cvflow.pipelines.{module}")
        params, root = load(params_file, overrides, **{f"{section}.data.source": source, f"{section}.data.path": path})
        pipeline.fetch(params, root, source=source, path=path)

    command.__doc__ = summary
    app.command(name)(command)


_register("hotdog", "hotdog", "hotdog", "demo | d2l | local",
          "The hot dog set (book 13.2) into data/hotdog/{train,test}/{hotdog,not-hotdog}/.")
_register("photos", "photos", "photos", "demo | d2l | local",
          "The book's photos (catdog, rainier, autumn-oak, cat1; SHA-1 checked) into data/photos/.")
_register("bananas", "bananas", "bananas", "demo | d2l | local",
          "Banana detection (13.6) into data/banana-detection/bananas_{train,val}/.")
_register("voc", "voc", "voc", "demo | d2l | local",
          "Pascal VOC2012 segmentation (13.9) into data/voc/VOCdevkit/VOC2012/.")
_register("cifar10", "cifar10", "cifar10_augmentation", "demo | torchvision | local",
          "CIFAR-10 for augmentation (13.1) into data/cifar10/cifar-10-batches-py/.")
_register("kaggle-cifar10", "kaggle_cifar10", "kaggle_cifar10", "demo | d2l | kaggle | local",
          "Kaggle CIFAR-10 (13.13) into data/kaggle-cifar10/ (train/, test/, trainLabels.csv).")
_register("kaggle-dogs", "kaggle_dogs", "kaggle_dogs", "demo | d2l | kaggle | local",
          "Kaggle dog breeds (13.14) into data/kaggle-dogs/ (train/, test/, labels.csv).")
