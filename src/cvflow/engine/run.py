"""One tracked training run: what every task's ``train`` does, in one place.

A pipeline describes a run with a :class:`RunSpec` (which data, which model, which task,
which recipe, which files) and calls :func:`train_run`, which does the rest:

1. device, ``torchrun`` process group and seeds (:mod:`cvflow.engine.runtime`);
2. the model (built after seeding, so its initialisation is repeatable), parameter groups,
   optimizer, schedule, loaders (``num_workers: auto``);
3. a fingerprint of the recipe, of the source of every cvflow module the run has imported and
   of the data's identity (file list with sizes): a checkpoint made by other code or other data
   is discarded with one line saying which;
4. resume from the checkpoint, reopening its MLflow run (tags updated for this attempt);
5. the fit, tracked per epoch on rank 0 (params, per-epoch metrics, data sets as run inputs);
6. the outputs, the same for every run (:class:`RunPaths`): the model file (architecture
   recorded), ``metrics/<task>/<run>.json`` (the last epoch), ``metrics/<task>/<run>_history.csv``,
   ``data/reports/<task>/<run>_curves.png``; in MLflow the model as an MLflow model, the curves
   and the metrics JSON;
7. the MLflow run ends FINISHED, FAILED (an error, a NaN) or KILLED (Ctrl-C); the process group
   is torn down whatever happened.

DVC hashes the files of step 6, so they hold results only: wall-clock figures
(``epoch_seconds``, ``examples_per_sec``) go to MLflow alone, and no run id or absolute path is
written into them. MLflow finds a model's run through the model file's SHA-1 (tag
``model_sha1``, :func:`cvflow.tracking.find_run`).

Paths and tracking are usable without a model fit (style transfer optimises an image):
:class:`RunPaths`, :func:`tracked` and :class:`cvflow.tracking.Tracker` stand alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from cvflow.engine.checkpoint import fingerprint
from cvflow.engine.freeze import freeze
from cvflow.engine.paths import RunPaths
from cvflow.engine.optim import build_optimizer, build_scheduler
from cvflow.engine.runtime import (
    DistInfo,
    Precision,
    init_distributed,
    resolve_device,
    seed_everything,
    shutdown_distributed,
    use_channels_last,
    resolve_workers,
    use_pin_memory,
)
from cvflow.engine.trainer import Trainer, make_loader

if TYPE_CHECKING:  # only in annotations: a run needs no params schema nor MLflow's model code to import
    from cvflow.params import Recipe
    from cvflow.serving import Servable

#: Per-epoch figures that depend on the machine, not on the run: MLflow only, never in DVC outputs.
TIMING_KEYS = ("epoch_seconds", "examples_per_sec")


@dataclass
class RunSpec:
    """Everything that makes one training run what it is (see the module docstring)."""

    paths: RunPaths                       # its task is the MLflow experiment, its name the run's name
    build: Callable[[], nn.Module]        # called after seeding: the initial model, from a registered builder
                                          # (cvflow.models.files.register_model), so its file records it
    task: Any                             # an engine Task with a ``reduction`` field
    train_set: Dataset
    eval_set: Dataset | None
    recipe: Recipe                        # epochs, batch_size, optim, loss_reduction (a FrozenRecipe adds freeze)
    config: dict[str, Any]                # what defines the run: logged as params, fingerprinted
    inputs: Mapping[str, Path]            # the data sets read (name -> folder): fingerprint and MLflow inputs
    classes: Sequence[str] = ()
    groups: Callable[[nn.Module], list[dict]] | None = None   # parameter groups (e.g. the head at 10x)
    collate_fn: Callable | None = None
    tags: dict[str, str] = field(default_factory=dict)       # e.g. the DVC stage (`stage`) and the variant
    meta: dict[str, Any] = field(default_factory=dict)        # reproducible facts for the model file
    curve_metric: str = "acc"
    curve_label: str = "accuracy"
    title: str = ""
    input_digests: Mapping[str, str] = field(default_factory=dict)  # e.g. the DVC hash of an input folder
    serve: Servable | None = None         # how MLflow logs (and registers) the model
    freeze: Sequence[str] = ()            # modules kept as built (cvflow.engine.freeze), e.g. a linear probe's body
    freeze_key: str = "freeze"            # the params key that sets ``freeze``, named in its errors


@dataclass
class RunResult:
    model: nn.Module
    history: list[dict]          # per epoch, timings included (as MLflow has them)
    final: dict[str, float]      # the last epoch, as written to the metrics JSON
    run_id: str | None
    dist: DistInfo


# ----------------------------------------------------------------------------- identities


def folder_digest(folder: Path) -> str:
    """The identity of a data folder: MD5 of its relative file paths with their sizes (no reading).

    Cheap at any size (one ``scandir`` walk) and location-independent: the same data in
    another checkout has the same digest; an added, removed, renamed or resized file changes it.
    """
    folder = Path(folder)
    entries: list[str] = []
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        rel = os.path.relpath(top, folder)
        for name in sorted(files):
            path = os.path.join(top, name)
            entries.append(f"{os.path.normpath(os.path.join(rel, name))}\t{os.stat(path).st_size}")
    # MD5: an identity, not a security check; 32 characters, which MLflow's dataset digest allows (36 at most)
    return hashlib.md5("\n".join(entries).encode(), usedforsecurity=False).hexdigest()


def code_digest(prefix: str = "cvflow") -> str:
    """SHA-1 of the source of every loaded ``cvflow`` module (names and file bytes, sorted):
    a checkpoint made by other code is not resumed."""
    digest = hashlib.sha1()
    for name in sorted(n for n in sys.modules if n == prefix or n.startswith(prefix + ".")):
        path = getattr(sys.modules[name], "__file__", None)
        if path and os.path.exists(path):
            digest.update(name.encode() + b"\0")
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def without_timings(row: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k not in TIMING_KEYS}


# ----------------------------------------------------------------------------- tracking on its own


@contextlib.contextmanager
def tracked(tracker, dist: DistInfo | None = None) -> Iterator[None]:
    """End ``tracker``'s run by what happens inside: FINISHED, KILLED (Ctrl-C) or FAILED (anything
    else, re-raised); the ``torchrun`` process group is torn down in every case."""
    try:
        yield
    except KeyboardInterrupt:
        if tracker is not None:
            tracker.end("KILLED")
        raise
    except BaseException:
        if tracker is not None:
            tracker.end("FAILED")
        raise
    else:
        if tracker is not None:
            tracker.end("FINISHED")
    finally:
        shutdown_distributed()


def runtime_tags(device: torch.device, precision: Precision, dist: DistInfo, profile: str) -> dict[str, str]:
    """What may change between attempts of one run: updated on the MLflow run at every (re)start."""
    return {"profile": profile, "device": str(device), "precision": precision.name,
            "world_size": str(dist.world_size)}


# ----------------------------------------------------------------------------- the run


def architecture_modules(*models: nn.Module) -> list[str]:
    """The modules that register the architectures of ``models`` (a served model imports them to load its files)."""
    from cvflow.models.files import architecture_module

    return sorted({architecture_module(model.cvflow_arch[0]) for model in models})


def train_run(spec: RunSpec, params: Any) -> RunResult:
    """Train, track and write one run as :class:`RunSpec` describes it; see the module docstring."""
    from cvflow.fileio import sha1sum, write_csv, write_json
    from cvflow.models.files import save_model
    from cvflow.plots import training_curves
    from cvflow.tracking import Tracker

    common = params.common
    recipe = spec.recipe
    device = resolve_device(common.device)
    dist = init_distributed(device)
    tracker = None
    try:
        seed_everything(common.seed + dist.rank)
        model = spec.build()
        frozen = freeze(model, spec.freeze, spec.freeze_key)
        groups = spec.groups(model) if spec.groups else [{"params": model.parameters()}]
        optimizer = build_optimizer(groups, recipe.optim)  # the parameters that train: the frozen ones left out
        task = dataclasses.replace(spec.task, reduction=recipe.loss_reduction)
        loader_kwargs = dict(dist_info=dist, seed=common.seed, num_workers=resolve_workers(common.num_workers, device),
                             pin_memory=use_pin_memory(device, common.pin_memory), collate_fn=spec.collate_fn)
        train_loader = make_loader(spec.train_set, recipe.batch_size, train=True, **loader_kwargs)
        eval_loader = (make_loader(spec.eval_set, recipe.batch_size, train=False, **loader_kwargs)
                       if spec.eval_set is not None else None)
        digests = {name: folder_digest(folder) for name, folder in sorted(spec.inputs.items())}
        precision = Precision.resolve(device, common.precision)
        trainer = Trainer(model, task, optimizer, recipe.epochs, device, spec.paths.checkpoint,
                          {"settings": fingerprint(spec.config), "code": code_digest(), "data": fingerprint(digests)},
                          scheduler=build_scheduler(optimizer, recipe.optim, recipe.epochs, len(train_loader)),
                          precision=precision, channels_last=use_channels_last(device, common.channels_last),
                          dist_info=dist, description=spec.paths.name, frozen=frozen)
        extra = trainer.resume() or {}
        if dist.is_main:
            tracker = Tracker(spec.paths.root, spec.paths.task, spec.paths.name)
        with tracked(tracker, dist):
            run_id = None
            if tracker is not None:
                run_id = tracker.start(extra.get("mlflow_run_id"),
                                       tags={**runtime_tags(device, precision, dist, params.profile), **spec.tags},
                                       system_metrics=common.system_metrics_every)
                tracker.log_params({"profile": params.profile, "world_size": dist.world_size,  # fixed: a resume checks it
                                    "common": common.model_dump(mode="json"),
                                    "run": spec.config})
                tracker.log_inputs({name: (folder, spec.input_digests.get(name) or digests[name])
                                    for name, folder in spec.inputs.items()})
                tracker.reconcile(trainer.history)
            history = trainer.fit(train_loader, eval_loader, callbacks=[tracker] if tracker else [],
                                  extra={"mlflow_run_id": run_id})
            final = without_timings(history[-1])
            if dist.is_main:
                paths = spec.paths
                save_model(paths.model, model, spec.classes,
                           {**spec.meta, "epochs": len(history)})
                write_json(paths.metrics, final)
                write_csv(paths.history, [without_timings(row) for row in history])
                training_curves({paths.name: history}, paths.curves, spec.title or f"{paths.task}: {paths.name}",
                                metric=spec.curve_metric, metric_label=spec.curve_label)
                tracker.set_tags({"model_sha1": sha1sum(paths.model)})
                tracker.log_artifact(paths.curves, "plots")
                tracker.log_artifact(paths.metrics, "metrics")
                if spec.serve is not None:
                    tracker.log_model(paths.model, spec.serve, spec.classes, architecture_modules(model))
                trainer.discard_checkpoint()
        return RunResult(model, history, final, run_id, dist)
    finally:
        shutdown_distributed()


def train_variant(params: Any, root: Path, experiment: str, variant: str, *, recipe: Recipe,
                  data: Mapping[str, Path], digests: Mapping[str, str], config: Mapping[str, Any],
                  meta: Mapping[str, Any] | None = None, **fields: Any) -> RunResult:
    """One run of a task that trains several variants alike (fine-tune / scratch, augment / no-augment,
    train / train_valid): named, tagged, configured and recorded the same way for every task. ``experiment``: the
    task's MLflow experiment and files' folder; ``data``: the data sets read (name -> folder), ``digests`` their DVC
    hashes; ``fields``: the rest of the :class:`RunSpec`. The variant is checked where it is read (the command
    offers only the declared ones; a task's training code refuses one it cannot run), not here: no list of
    variants in training code, so adding one stales no other run."""
    spec = RunSpec(paths=RunPaths(root, experiment, variant), recipe=recipe, inputs=data, input_digests=digests,
                   config={"variant": variant, "recipe": recipe.model_dump(mode="json"), "seed": params.common.seed,
                           **config},
                   tags={"variant": variant}, meta={"variant": variant, **(meta or {})}, **fields)
    return train_run(spec, params)
