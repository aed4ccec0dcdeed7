"""dvc.yaml follows from the task declarations, and its code deps are complete and precise.

``cvflow dag`` writes dvc.yaml; its code deps come from the import analysis of
:mod:`cvflow.stages.deps` (every file a stage's command can run). These tests check that the
committed file is the generator's output, that the analysis follows what a stage really runs (lazy
imports, helpers reached by name, the task modules another task's code uses), and that it stays
precise: an edit to a library file makes stale only the stages that run it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cvflow.stages.dag import code_deps, entries_of, expand, render, repo_root
from cvflow.stages.deps import has_code, imports_of, is_exempt, module_file, reached
from conftest import variants

REPO = Path(__file__).resolve().parents[1]


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _rel(module: str) -> str:
    return module_file(module).relative_to(REPO).as_posix()


def test_dvc_yaml_is_what_cvflow_dag_writes():
    assert repo_root() == REPO, "the installed cvflow is another checkout; run `pip install -e .` here"
    assert (REPO / "dvc.yaml").read_text(encoding="utf-8") == render(), \
        "dvc.yaml differs from the task declarations: run `cvflow dag` and commit dvc.yaml"


def test_cvflow_dag_check_says_whether_dvc_yaml_is_current(tmp_path):
    stale = tmp_path / "dvc.yaml"
    stale.write_text("stages: {}\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "cvflow.stages.cli", "dag", "--check", "--out", str(stale)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 1 and "out of date" in run.stdout
    written = subprocess.run([sys.executable, "-m", "cvflow.stages.cli", "dag", "--out", str(stale)],
                             capture_output=True, text=True, cwd=REPO)
    assert written.returncode == 0, written.stderr
    assert stale.read_text(encoding="utf-8") == render()


def test_every_declared_stage_is_a_command_and_a_dvc_stage():
    from cvflow.pipelines import TASKS
    from cvflow.stages.cli import build_app
    from typer.main import get_command

    cli = get_command(build_app())
    stages = _stages()
    for name, task, stage, variant in expand(TASKS):
        assert name in stages
        words = stages[name]["cmd"].split()[1:]
        command = cli
        for word in [w for w in words if not w.startswith("--")][:2]:
            command = command.commands[word]
        assert command.callback is not None, name
    assert set(stages) == {name for name, *_ in expand(TASKS)}


def test_the_analysis_follows_lazy_imports_and_helpers_reached_by_name():
    # fetch cifar10: the pipeline's fetch imports the source lazily, which imports the twin inside a function
    deps = set(_stages()["fetch-cifar10"]["deps"])
    assert {_rel("cvflow.pipelines.cifar10_augmentation.fetching"), _rel("cvflow.data.sources.cifar"),
            _rel("cvflow.twins.cifar")} <= deps
    # and none of the training code
    assert _rel("cvflow.engine.trainer") not in deps
    # one library module, two stages: each depends on what its own function of it reaches
    fetch, prepare = (set(_stages()[f"{verb}-kaggle-cifar10"]["deps"]) for verb in ("fetch", "prepare"))
    competition, reorg, download = (_rel(m) for m in ("cvflow.competition", "cvflow.data.sources.kaggle_reorg",
                                                      "cvflow.data.sources.kaggle"))
    assert competition in fetch and competition in prepare
    assert download in fetch and reorg not in fetch
    assert reorg in prepare and download not in prepare and _rel("cvflow.twins.cifar") not in prepare
    # train hotdog finetune reaches resnet through a helper of its module (build -> load_backbone)
    assert _rel("cvflow.models.resnet") in set(_stages()["train-hotdog-finetune"]["deps"])


def test_a_task_module_is_a_dep_only_of_stages_that_use_its_code():
    """26.2: a task is a package; each stage depends on its own function's module and what that runs, not on the
    declaration (which names every stage function) nor on the task's other stages, nor on the schema."""
    stages = _stages()

    def users(module: str) -> set[str]:
        return {name for name, spec in stages.items() if _rel(module) in spec["deps"]}

    trains = {f"train-hotdog-{variant}" for variant in variants("hotdog")}
    assert users("cvflow.pipelines.hotdog.fetching") == {"fetch-hotdog"}
    assert users("cvflow.pipelines.hotdog.pretraining") == {"pretrain-hotdog"}
    assert users("cvflow.pipelines.hotdog.training") == trains
    assert users("cvflow.pipelines.hotdog.evaluation") == {"evaluate-hotdog"}
    assert users("cvflow.pipelines.hotdog.common") == {"fetch-hotdog", "pretrain-hotdog", *trains, "evaluate-hotdog"}
    # the declaration: read by the comparison (its VARIANTS) and the report (its book section); a variant added
    # there stales those two and its own run only
    assert users("cvflow.pipelines.hotdog") == {"evaluate-hotdog", "report"}
    assert not users("cvflow.pipelines.hotdog.schema")  # values reach a stage through tracked params keys
    # the declarations and the command layer are exempt, never a dep
    for spec in stages.values():
        assert not any(d.startswith("stages/") or d in ("pipelines/__init__.py", "pipelines/task.py")
                       for d in spec["deps"])


def test_a_function_only_named_when_a_module_loads_is_not_run():
    """The rule that lets a declaration name its stage functions: loading a module runs its top level and what that
    calls (transitively); a function passed on as a value (``Stage("train", train)``) is not run, so what it
    imports is no dep of a stage that merely loads the declaration."""
    from cvflow.stages.deps import _definitions, _load_time, _top_level

    tree = ast.parse(
        "from work import heavy, light, value\n"
        "def named():\n    from cvflow.engine import trainer\n"
        "def helper():\n    return light()\n"
        "LIMIT = value\n"
        "TABLE = {'stage': heavy, 'other': named, 'made': helper(), 'limit': LIMIT}\n")
    run, runs = _load_time(_top_level(tree), _definitions(tree))
    assert "helper" in run and "named" not in run
    assert {"light", "helper"} <= runs and not {"heavy", "named"} & runs


def _stale_after_edit(path: str) -> set[str]:
    """The stages DVC reruns when ``path`` changes: those listing it (or a folder above it) as a dep."""
    return {name for name, spec in _stages().items()
            if any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in spec["deps"])}


@pytest.mark.parametrize("module, at_most, expected", [
    ("cvflow.detection.boxes", 5, {"figures-anchors", "train-bananas", "evaluate-bananas", "predict-bananas"}),
    ("cvflow.models.fcn", 3, {"train-voc", "evaluate-voc", "figures-upsampling"}),
    ("cvflow.style", 1, {"stylize"}),
])
def test_an_edit_reruns_only_the_stages_that_run_the_file(module, at_most, expected):
    stale = _stale_after_edit(_rel(module))
    assert stale <= expected | set(), stale
    assert len(stale) <= at_most and stale, stale


def test_no_library_file_is_a_dep_of_every_stage():
    """A library file every stage depends on reruns the whole DAG when edited: only the plainest helpers may."""
    stages = _stages()
    counts: dict[str, int] = {}
    for spec in stages.values():
        for dep in spec["deps"]:
            if dep.startswith("src/"):
                counts[dep] = counts.get(dep, 0) + 1
    everywhere = {d for d, n in counts.items() if n == len(stages)}
    # fileio: atomic writes; engine.paths: where a run's files lie, which every declaration reads to name its outputs
    assert everywhere <= {"src/cvflow/fileio.py", "src/cvflow/engine/paths.py"}, everywhere


def test_code_is_reached_without_dynamic_imports():
    from cvflow.pipelines import TASKS

    for _, task, stage, _ in expand(TASKS):
        found = reached(entries_of(stage))
        dynamic = [d for d in found.dynamic if "/stages/cli.py" not in d]
        assert not dynamic, f"{stage.verb} {task.name}: dynamic imports the analysis cannot follow: {dynamic}"


def test_deps_exist_and_are_files_with_code():
    from cvflow.pipelines import TASKS

    for _, task, stage, _ in expand(TASKS):
        for dep in code_deps(task, stage, REPO):
            path = REPO / dep
            assert path.is_file(), dep
            assert has_code(ast.parse(path.read_text(encoding="utf-8"))), dep


def test_import_extraction():
    source = '''
from __future__ import annotations
import importlib
from typing import TYPE_CHECKING
import cvflow.a.b
from . import sibling
from .pkg import name
if TYPE_CHECKING:
    from cvflow.typing_only import T

def lazy():
    from cvflow.lazy import thing
    return importlib.import_module(f"cvflow.pipelines.{module}")
'''
    found = imports_of(ast.parse(source), "cvflow.here", where="m.py")
    pairs = dict(found.pairs)
    assert pairs["cvflow.a.b"] is None
    assert pairs["cvflow.here"] == {"sibling"} and pairs["cvflow.here.pkg"] == {"name"}
    assert pairs["cvflow.lazy"] == {"thing"}
    assert "cvflow.typing_only" not in pairs
    assert found.dynamic == ["m.py:13: importlib.import_module(f'cvflow.pipelines.{module}')"]
    assert not has_code(ast.parse('"""doc only."""\n'))
    assert has_code(ast.parse('"""doc."""\nfrom cvflow.x import y\n'))
    assert is_exempt("cvflow.stages.cli") and is_exempt("cvflow.params") and not is_exempt("cvflow.fileio")


def test_chart_titles_have_no_quotes():
    """dvc-render puts a chart's title, unescaped, into a JavaScript string of the page: a quote in it ends
    the string early and that chart never draws."""
    from cvflow.pipelines import TASKS

    titles = [title for task in TASKS for title in task.charts]
    assert titles and not [t for t in titles if "'" in t or '"' in t]


def test_a_stage_tracks_only_the_smoke_keys_laid_over_what_it_reads():
    """26.2: a smoke value added for one stage (a new variant's recipe) leaves the task's other stages up to date:
    each stage tracks the smoke switch and, of the task's smoke section, only the keys over its own params."""
    from cvflow.pipelines import TASKS
    from cvflow.stages.dag import _params

    hotdog = next(t for t in TASKS if t.name == "hotdog")
    smoked = {"hotdog": ("demo", "transforms", "pretrain", "finetune", "scratch", "probe", "another", "grid_images")}
    finetune = _params(hotdog, hotdog.stage("train"), "finetune", smoked)
    assert "common.smoke" in finetune and "smoke.hotdog.finetune" in finetune
    assert not {"smoke.hotdog.another", "smoke.hotdog.scratch", "smoke.hotdog", "smoke.hotdog.pretrain"} & set(finetune)
    fetch = _params(hotdog, hotdog.stage("fetch"), None, smoked)
    assert [k for k in fetch if k.startswith("smoke.")] == ["smoke.hotdog.demo"]
    # a stage whose reads the smoke section does not touch does not track the switch either
    assert "common.smoke" not in _params(hotdog, hotdog.stage("fetch"), None, {"hotdog": ("finetune",)})
