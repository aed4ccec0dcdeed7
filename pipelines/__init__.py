"""The tasks of the chapter, each declared once in its module here (see :mod:`cvflow.pipelines.task`).

:data:`TASKS` lists them; the params schema of the whole file (:data:`Params`) is assembled from
their schemas, and :func:`load_params` validates a params file against it. Importing this package
imports every task's declaration and schema, and no library code beyond the params building blocks.

To add a task: write ``pipelines/<task>.py`` (its schema, its stage functions, one ``TASK``), add it to
:data:`TASKS`, give it sections in ``params.yaml``, and run ``cvflow dag`` to write its DVC stages.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.params import ParamsBase, assemble
from cvflow.params import load_params as _load_params
from cvflow.pipelines import (
    anchors,
    augmentation_figures,
    bananas,
    cifar10_augmentation,
    hotdog,
    kaggle_cifar10,
    kaggle_dogs,
    photos,
    report,
    style,
    upsampling_figures,
    voc,
)
from cvflow.pipelines.task import Task

_MODULES = (hotdog, photos, bananas, voc, cifar10_augmentation, kaggle_cifar10, kaggle_dogs, anchors,
            augmentation_figures, style, upsampling_figures)

#: every task, in the order of dvc.yaml (data first, then the book's sections; the report of them all last)
CHAPTER: tuple[Task, ...] = tuple(module.TASK for module in _MODULES)
TASKS: tuple[Task, ...] = CHAPTER + (report.declare(CHAPTER, {
    module.TASK.name: "pipelines/" + Path(module.__file__).relative_to(Path(__file__).parent).as_posix()
    for module in _MODULES}),)

#: the schema of the whole params file
Params: type[ParamsBase] = assemble({t.key: t.profile for t in TASKS if t.profile is not None})


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None,
                data: dict | None = None) -> ParamsBase:
    """Read, override (``--set``), lay the smoke section over (``common.smoke``) and validate the whole file."""
    return _load_params(Params, path, overrides, data)


def validate(data: dict, source: str = "params.yaml") -> ParamsBase:
    from cvflow.params import validate as _validate

    return _validate(data, Params, source)
