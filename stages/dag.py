"""``dvc.yaml`` from the task declarations: ``cvflow dag`` writes it, a test checks it is current.

Each declared stage becomes one DVC stage per variant: its command (``cvflow VERB TASK [--variant V]``),
its data deps, its code deps (the project files its command runs, found by :mod:`cvflow.stages.deps`),
its params (the keys it declares, under ``<section>.${profile}``, plus the profile and the smoke switch),
its outputs and metrics; the tasks' comparison charts become the top-level ``plots``.

Why a generator and not DVC's own templating (``foreach``/``matrix``): code deps are per stage and per
file, found by following imports from the stage's function; templating would need them as data anyway,
and folder-level deps would rerun stages for edits to code they never run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import yaml

from cvflow.params import load_yaml
from cvflow.pipelines.task import Stage, Task

HEADER = """\
# The whole DAG, WRITTEN BY `cvflow dag` from the task declarations in pipelines/ (edit those, then rerun
# `cvflow dag`; tests/test_dvc_deps.py fails while this file and the declarations disagree).
# Stage commands are `cvflow VERB TASK` (run any by hand, see `cvflow --help`). Code deps are the files
# each command runs, found by import analysis (cvflow.stages.deps): an edit reruns only the stages that
# run the edited code. Params are tracked per active profile (<task>.${profile}), so flipping `profile`
# in params.yaml reruns everything, while editing the inactive profile reruns nothing. The MLflow store is
# deliberately no dependency. Every output, metrics and per-epoch CSVs included, is cached by DVC and
# ignored by git; commit dvc.lock.
"""


def repo_root() -> Path:
    """The project folder whose files the stages run (where ``src/cvflow`` lies)."""
    from cvflow.stages.deps import module_file

    return module_file("cvflow").parents[2]


def stage_cmd(task: Task, stage: Stage, variant: str | None) -> str:
    words = ["cvflow", stage.verb] + ([] if stage.top_level else [stage.word or task.name])
    return " ".join(words + (["--variant", variant] if variant else []))


def expand(tasks: tuple[Task, ...]) -> Iterator[tuple[str, Task, Stage, str | None]]:
    """Every DVC stage: (name, task, stage, variant)."""
    for task in tasks:
        for stage in task.stages:
            if stage.dvc:
                for variant in stage.variants or (None,):
                    yield task.stage_name(stage, variant), task, stage, variant


def entries_of(stage: Stage) -> dict[str, set[str]]:
    """Where the import analysis starts for ``stage``: its function, by module and name."""
    return {stage.function.__module__: {stage.function.__name__}}


def code_deps(task: Task, stage: Stage, root: Path) -> list[str]:
    """The project files ``stage``'s command runs (relative to ``root``), sorted."""
    from cvflow.stages.deps import reached

    files = reached(entries_of(stage)).required().values()
    return sorted(path.relative_to(root).as_posix() for path in files)


def _overlaps(a: str, b: str) -> bool:
    """True when params keys ``a`` and ``b`` (relative to one section; "" the whole of it) share a value."""
    return not a or not b or a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _params(task: Task, stage: Stage, variant: str | None, smoked: dict[str, tuple[str, ...]]) -> list[str]:
    if not stage.params and task.key is None:
        return []
    keys = ["profile"]
    own: list[str] = []
    for key in (*stage.params, *stage.variant_params.get(variant or "", ())):
        key = key.format(variant=variant)
        if key == "profile":
            continue
        if key.startswith("common."):
            keys.append(key)
        else:
            own.append(key)
            keys.append(f"{task.key}.${{profile}}" + (f".{key}" if key else ""))
    # the smoke switch, and of the smoke section the keys that lay over what this stage reads: a smoke value
    # added for another stage (a new variant's recipe) leaves this one up to date
    laid = [key for key in smoked.get(task.key or "", ()) if any(_overlaps(key, mine) for mine in own)]
    if laid:
        keys += ["common.smoke", *(f"smoke.{task.key}.{key}" for key in laid)]
    return keys


def smoked_tasks(root: Path) -> dict[str, tuple[str, ...]]:
    """The tasks params.yaml's ``smoke`` section changes, each with the keys it lays over their profile."""
    data = load_yaml((root / "params.yaml").read_text(encoding="utf-8")) or {}
    return {task: tuple(values or {}) for task, values in (data.get("smoke") or {}).items()}


def stages_dict(tasks: tuple[Task, ...], root: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    smoked = smoked_tasks(root)
    for name, task, stage, variant in expand(tasks):
        spec: dict[str, Any] = {"cmd": stage_cmd(task, stage, variant)}
        data = (*stage.deps, *stage.variant_deps.get(variant or "", ()))
        spec["deps"] = [d.format(variant=variant) for d in data] + code_deps(task, stage, root)
        params = _params(task, stage, variant, smoked)
        if params:
            spec["params"] = params
        if stage.outs:
            spec["outs"] = [o.format(variant=variant) for o in stage.outs]
        if stage.metrics:
            spec["metrics"] = [m.format(variant=variant) for m in stage.metrics]
        found[name] = spec
    return found


def render(tasks: tuple[Task, ...] | None = None, root: Path | None = None) -> str:
    """The text of ``dvc.yaml``."""
    if tasks is None:
        from cvflow.pipelines import TASKS as tasks
    root = root or repo_root()
    stages = stages_dict(tasks, root)
    plots = [{title: dict(chart)} for task in tasks for title, chart in task.charts.items()]
    body = yaml.safe_dump({"stages": stages}, sort_keys=False, width=120, default_flow_style=False)
    body = re.sub(r"\n(  [^ -][^\n]*:\n    cmd:)", r"\n\n\1", body)  # a blank line between stages
    text = HEADER + "\n" + body
    if plots:
        text += "\n# Curves side by side: `dvc plots show` (or `dvc plots diff`) draws them.\n"
        text += yaml.safe_dump({"plots": plots}, sort_keys=False, width=120, default_flow_style=None)
    return text
