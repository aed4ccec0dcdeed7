"""The task list: every module of ``cvflow.pipelines`` that declares a ``TASK`` is one of the chapter's tasks.

``pipelines/__init__.py`` finds the task modules by reading their source (``task_modules``: a module-level
``TASK = ...``), the same discovery the code-deps analysis follows; a declaring module it missed would have no
commands, no params section and no DVC stages, silently. Here the package is searched by importing (``pkgutil``),
and a declaring module the discovery missed is named.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import cvflow.pipelines
from cvflow.pipelines import CHAPTER
from cvflow.pipelines.task import Task


def _unlisted() -> list[str]:
    """Modules (or packages) of cvflow.pipelines that declare a TASK which is not one of CHAPTER's."""
    found = []
    for info in pkgutil.iter_modules(cvflow.pipelines.__path__, cvflow.pipelines.__name__ + "."):
        task = getattr(importlib.import_module(info.name), "TASK", None)
        if isinstance(task, Task) and task not in CHAPTER:
            found.append(info.name)
    return found


def test_every_module_declaring_a_task_is_listed():
    assert _unlisted() == [], "a module declares TASK in a form task_modules does not read"


def test_a_declaration_left_out_of_the_list_is_named(tmp_path, monkeypatch):
    (tmp_path / "forgotten.py").write_text("from cvflow.pipelines.task import Task\n\n"
                                           "TASK = Task(name='forgotten', stages=())\n")
    monkeypatch.setattr(cvflow.pipelines, "__path__", [*cvflow.pipelines.__path__, str(tmp_path)])
    try:
        assert _unlisted() == ["cvflow.pipelines.forgotten"]
    finally:
        sys.modules.pop("cvflow.pipelines.forgotten", None)
