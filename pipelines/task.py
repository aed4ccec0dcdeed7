"""How a task declares itself, once: its params schema, its variants and its stages.

A task under ``pipelines/`` is a package: its ``__init__.py`` declares one :class:`Task` (its variants, stages,
charts and book sections), its ``schema.py`` the params of one profile, and one module per stage function (with a
module of what those share). Everything else follows from the declaration:
the ``cvflow VERB TASK`` commands (:mod:`cvflow.stages.cli`), the params schema of the whole file
(:mod:`cvflow.pipelines`), and the DVC stages of ``dvc.yaml`` (:mod:`cvflow.stages.dag`), whose code
dependencies the import analysis (:mod:`cvflow.stages.deps`) finds from the stage's function.

A stage function takes ``(params, root, **options)``: the validated params file, the project folder,
and the values of the stage's own :class:`Option` s that are passed as keyword arguments (a
variant stage also gets ``variant``). A :class:`Stage` names its function itself (not by a string), and the
import analysis follows that function alone: a stage depends on the module of its function and what that runs,
not on the declaration nor on the task's other stages (adding a variant stales only its own stages and those
that read the declaration: the comparison and the report). This module imports no library code but the run
paths' layout (:mod:`cvflow.engine.paths`), and a stage module imports what it needs inside its function:
importing every task's declaration (to validate ``params.yaml``) stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, TypeVar

P = TypeVar("P")

#: the options every command shares (written once in :mod:`cvflow.stages.cli`); ``--epochs``, ``--lr`` and
#: ``--batch-size`` exist where the stage trains with a recipe
RECIPE_KEYS = {"epochs": "epochs", "lr": "optim.lr", "batch_size": "batch_size"}

#: What a tracked run reads of ``common`` (it logs all of it): the seed, and the device, precision, memory layout,
#: loader processes and processes (``devices`` x ``nodes``: the world size) it computes with, which change what it
#: computes (the kernels that sum; the random augmentations that loader workers draw; the order of the gradient
#: reduction and each rank's BatchNorm statistics). ``tests/test_params_read.py`` checks every stage's params against
#: what the stage reads.
RUN_COMMON = ("common.seed", "common.precision", "common.device", "common.channels_last", "common.num_workers",
              "common.devices", "common.nodes")
#: How a data set is made: what its fetch stage reads, and what a training run logs beside its own settings.
DATA_PARAMS = ("data", "demo")


@dataclass(frozen=True)
class Option:
    """One option of a stage command beyond the shared ones.

    ``key``: the params key it overrides, relative to the task's active profile (``data.source``) or, starting
    with ``common.``, absolute; ``kwarg``: passed to the stage function as this keyword argument. ``convert``
    turns the typed value into the override (``300x450`` -> ``[[300, 450]]``).
    """

    name: str
    type: type
    help: str
    key: str | None = None
    kwarg: bool = False
    choices: tuple[str, ...] = ()
    convert: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Stage:
    """One command of a task, and (unless ``dvc`` is false) its DVC stage, one per variant.

    Paths and keys may hold ``{variant}``. ``deps`` are the data the stage reads (other stages' outputs);
    its code dependencies are found by the import analysis. ``params`` are keys of the task's active profile,
    or ``common.*``/``profile``.
    """

    verb: str
    function: Callable[..., Any]         # the stage function, ``(params, root, **options)``
    help: str
    word: str | None = None              # the command's word after the verb (default: the task's name)
    variants: tuple[str, ...] = ()
    variant_help: str = ""
    recipe: str | None = None            # the Recipe this stage trains with: --epochs, --lr, --batch-size
    options: tuple[Option, ...] = ()
    adjust: Callable[[dict], dict] | None = None  # option values -> option values (defaults that depend on others)
    deps: tuple[str, ...] = ()
    params: tuple[str, ...] = ()         # "" tracks the whole profile section
    variant_deps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)    # a variant's own, added
    variant_params: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # a variant's own, added
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    dvc: bool = True                     # false: by hand only (e.g. sending a Kaggle submission)
    top_level: bool = False              # `cvflow VERB` with no task word (stylize)
    echo_paths: bool = False             # print the returned {name: path} (figures)
    tracked: bool = False                # records to MLflow: the store is checked before any work


@dataclass(frozen=True)
class Number:
    """One row of a report section's table: this run's value of a metric, beside the book's printed one.

    ``ref`` is ``FILE:KEY`` (``metrics/hotdog.json:finetune.test_acc``; a dotted key into the JSON).
    ``book``: what the book prints for the same metric (PyTorch edition), None where it prints none;
    ``book_note`` says how the book's number was measured when that differs from this row's.
    """

    label: str
    ref: str
    book: float | None = None
    fmt: str = ".3f"
    book_note: str = ""


@dataclass(frozen=True)
class Effect:
    """What the book demonstrates, as a check on this run: ``left OP right x factor`` (refs or numbers)."""

    text: str
    left: str
    op: str                              # > >= < <=
    right: str | float
    factor: float = 1.0


@dataclass(frozen=True)
class Section:
    """A book section in ``cvflow report``: what it shows, this run's numbers and the book's, its pictures.

    ``pictures``: PNG files (stage outputs); ``charts``: titles of the task's ``charts``, drawn as static images;
    ``runs``: ``EXPERIMENT/RUN`` names to open in the MLflow UI. ``continues``: the name of the task whose section
    of the same number this one adds to (13.1: the augmentation gallery continues the CIFAR-10 runs' section), shown
    as one section after that task's; same title. Two sections of one number without it are an error.
    """

    number: str
    title: str
    text: str
    numbers: tuple[Number, ...] = ()
    effects: tuple[Effect, ...] = ()
    pictures: tuple[str, ...] = ()
    charts: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    continues: str | None = None


@dataclass(frozen=True)
class Task(Generic[P]):
    """A task: its name (the command word), its params section and schema, its module, its stages."""

    name: str
    stages: tuple[Stage, ...]
    profile: type[P] | None = None       # the schema of one profile (demo and real share it); None: no section
    section: str | None = None           # params.yaml's section (default: the name with '_' for '-')
    title: str = ""                      # the book's section, for comments and help
    charts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # dvc.yaml top-level plots
    report: tuple[Section, ...] = ()     # its book sections in `cvflow report`

    @property
    def key(self) -> str | None:
        """The params section of this task, or None when it has no params of its own."""
        if self.profile is None:
            return None
        return self.section or self.name.replace("-", "_")

    def cfg(self, params: Any) -> P:
        """The active profile's section of this task, typed as its schema."""
        return params.task(self.key)

    def stage(self, verb: str) -> Stage:
        return next(s for s in self.stages if s.verb == verb)

    def stage_name(self, stage: Stage, variant: str | None = None) -> str:
        """The stage's name in dvc.yaml (and its runs' MLflow tag ``stage``): ``train-hotdog-finetune``."""
        if stage.top_level:
            return stage.verb
        return "-".join([stage.verb, stage.word or self.name] + ([variant] if variant else []))

    def override(self, profile: str, key: str) -> str:
        """The absolute params key of ``key`` (relative to the active profile unless ``common.``/``profile``)."""
        if key == "profile" or key.startswith("common."):
            return key
        return f"{self.key}.{profile}.{key}"


# ----------------------------------------------------------------------------- which modules are tasks


def task_modules(folder: Path, package: str) -> list[str]:
    """The modules (or packages) of ``package`` in ``folder`` that declare a task: a module-level ``TASK = ...``.
    Found by reading the source (``ast``), not by importing it, so the code-deps analysis (cvflow.stages.deps)
    follows the same list without importing any task; sorted by name, which is also their order in dvc.yaml.
    A task added under ``pipelines/`` is found: no list to edit."""
    import ast

    found = []
    for path in sorted(folder.iterdir()):
        source = path / "__init__.py" if path.is_dir() else path
        if path.name.startswith(("_", ".")) or not source.is_file() or source.suffix != ".py":
            continue
        tree = ast.parse(source.read_text(encoding="utf-8"))
        if any(isinstance(node, (ast.Assign, ast.AnnAssign)) and any(
                isinstance(target, ast.Name) and target.id == "TASK"
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target]))
               for node in tree.body):
            found.append(f"{package}.{path.stem if path.is_file() else path.name}")
    return found


# ----------------------------------------------------------------------------- what several tasks declare alike


def fetch_stage(function: Callable[..., Any], out: str, sources: str, help: str, word: str | None = None,
                params: tuple[str, ...] = DATA_PARAMS) -> Stage:
    """``cvflow fetch NAME [--source S] [--path P]``: a data set into ``out`` (by ``function``, which takes
    ``source`` and ``path``)."""
    return Stage("fetch", function, help, word=word, params=params, outs=(out,), options=(
        Option("source", str, f"{sources} (default: the active profile's data.source)", key="data.source", kwarg=True),
        Option("path", Path, "folder or archive for --source local", key="data.path", kwarg=True),
    ))


def prepare_stage(function: Callable[..., Any], dataset: str) -> Stage:
    """``cvflow prepare NAME``: the book's train / valid / train_valid / test folders (by ``function``)."""
    return Stage(
        "prepare", function,
        f"data/{dataset}-prepared/{{train,valid,train_valid,test/unknown}}: per class max(floor(n_min x "
        "valid_ratio), 1) images to valid (the book's rule), seeded.",
        deps=(f"data/{dataset}",), params=("common.seed", "valid_ratio", "reorg"), outs=(f"data/{dataset}-prepared",),
        options=(Option("valid_ratio", float, "default: the active profile's valid_ratio", key="valid_ratio"),
                 Option("reorg", str, "link | manifest", key="reorg")))


def run_files(experiment: str, name: str = "{variant}",
              outs: tuple[str, ...] = ("model", "curves", "history")) -> dict[str, tuple[str, ...]]:
    """The outputs of one tracked training run, as Stage fields: the files :class:`cvflow.engine.paths.RunPaths`
    names (the layout is written there once), relative to the project folder; ``outs``: which of them, beside
    the metrics."""
    from cvflow.engine.paths import RunPaths

    paths = RunPaths(Path(), experiment, name)
    return {"outs": tuple(getattr(paths, kind).as_posix() for kind in outs), "metrics": (paths.metrics.as_posix(),)}


def curves(*files: str, y: str | list[str], x: str = "epoch") -> dict[str, Any]:
    """A comparison chart (dvc.yaml's top-level plots): ``y`` of each history file against ``x``."""
    return {"template": "linear", "x": x, "y": {f: y for f in files}}


def submit_stage(function: Callable[..., Any], competition: str, default_file: str, default_message: str) -> Stage:
    """``cvflow submit NAME``: the submission file to its Kaggle competition, by hand only (by ``function``, which
    takes ``file`` and ``message``)."""
    return Stage("submit", function, f"Submit to Kaggle competition {competition}, after checking the file.",
                 dvc=False, options=(
                     Option("file", Path, f"the CSV to send (default {default_file} in the project folder)",
                            kwarg=True),
                     Option("message", str, f"the submission's description (default: {default_message})",
                            kwarg=True)), tracked=True)
