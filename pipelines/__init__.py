"""The tasks of the chapter, each declared once in its module here (see :mod:`cvflow.pipelines.task`).

:data:`TASKS` lists them; the params schema of the whole file (:data:`Params`) is assembled from
their schemas, and :func:`load_params` validates a params file against it. Importing this package
imports every task's declaration and schema, and no library code beyond the params building blocks.

To add a task: write ``pipelines/<task>.py`` (its schema, its stage functions, one ``TASK``): it is found
(:func:`cvflow.pipelines.task.task_modules`); give it sections in ``params.yaml``, and run ``cvflow dag`` to write
its DVC stages.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, Mapping

from cvflow.params import ParamsBase, assemble
from cvflow.params import load_params as _load_params
from cvflow.pipelines import report
from cvflow.pipelines.task import Task, task_modules

# Every module (or package) here that declares a TASK is a task, found by reading the source (task_modules), in
# the order of their names: adding a task touches no list. The code-deps analysis (cvflow.stages.deps) follows the
# same discovery, so every declaration a stage loads is still seen by it.
_MODULES = tuple(import_module(name) for name in task_modules(Path(__file__).parent, __name__))

#: every task, in the order of dvc.yaml (by module name; the report of them all last)
CHAPTER: tuple[Task, ...] = tuple(module.TASK for module in _MODULES)
TASKS: tuple[Task, ...] = CHAPTER + (report.declare(CHAPTER, {
    module.TASK.name: "pipelines/" + Path(module.__file__).relative_to(Path(__file__).parent).as_posix()
    for module in _MODULES}),)

#: the schema of the whole params file
Params: type[ParamsBase] = assemble({t.key: t.profile for t in TASKS if t.profile is not None})


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None,
                data: dict | None = None, values: Mapping[str, Any] | None = None) -> ParamsBase:
    """Read, override (``--set`` text, then typed ``values``), lay the smoke section over (``common.smoke``) and
    validate the whole file."""
    return _load_params(Params, path, overrides, data, values)


def validate(data: dict, source: str = "params.yaml") -> ParamsBase:
    from cvflow.params import validate as _validate

    return _validate(data, Params, source)
