"""Hot dog fine-tuning (book 13.2): a pretrained ResNet-18 fine-tuned against training from scratch, and the
linear probe the book discusses but does not run (the pretrained body frozen, only the new head trained).

Stages (see ``dvc.yaml``)::

    fetch hotdog  ->  data/hotdog/{train,test}/{hotdog,not-hotdog}/*.jpg
    pretrain hotdog -> data/models/hotdog/source.pt   (the pretrained variants' starting weights)
    train hotdog --variant finetune|scratch|probe -> data/models/hotdog/<variant>.pt, metrics/hotdog/<variant>*.{json,csv}
    evaluate hotdog -> metrics/hotdog.json, data/reports/hotdog/*.png

This module is the declaration alone; the schema is in ``schema.py``, each stage's function in its own module
(``fetching``, ``pretraining``, ``training``, ``evaluation``), what they share in ``common.py``. A stage depends on
its own function's module, not on this one: adding a variant here stales only its run, the comparison and the
report.
"""

from __future__ import annotations

from pathlib import Path

from cvflow.pipelines.hotdog.common import DATA, EXPERIMENT, SOURCE, metrics_file, predictions_file, run_paths
from cvflow.pipelines.hotdog.evaluation import evaluate
from cvflow.pipelines.hotdog.fetching import fetch
from cvflow.pipelines.hotdog.pretraining import pretrain
from cvflow.pipelines.hotdog.schema import Hotdog, HotdogData, HotdogDemo  # noqa: F401  (the schema, re-exported)
from cvflow.pipelines.hotdog.training import train
from cvflow.pipelines.task import (DATA_PARAMS, RUN_COMMON, Effect, Number, Option, Section, Stage, Task, curves,
                                   fetch_stage, run_files)

#: the runs compared: each a run of the schema (``start``: source or random; a ``freeze`` for the probe)
VARIANTS = ("finetune", "scratch", "probe")
#: the runs that start from the source model (``start: source`` in params): their stages depend on its file
PRETRAINED = ("finetune", "probe")


def _rel(path: Path) -> str:
    return path.as_posix()


def _file(variant: str, kind: str, suffix: str = "") -> str:
    """A run's file, relative to the project folder (``RunPaths`` names them; ``reports`` + ``suffix``: a picture)."""
    paths = run_paths(Path(), variant)
    return _rel(paths.reports / f"{variant}{suffix}" if kind == "reports" else getattr(paths, kind))


SOURCE_MODEL = _file(SOURCE, "model")

#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
HISTORIES = tuple(_file(variant, "history") for variant in VARIANTS)
CHARTS = {
    "hotdog test accuracy per epoch": curves(*HISTORIES, y="test_acc"),
    "hotdog training loss per epoch": curves(*HISTORIES, y="train_loss"),
}
PREDICTION_GRIDS = tuple(_file(variant, "reports", "_predictions.png") for variant in VARIANTS)

REPORT = (Section(
    "13.2", "Fine-tuning",
    "A ResNet-18 pretrained on ImageNet gets a new output layer, trained at ten times the body's learning rate; "
    "after 5 epochs on 2,000 hot dog photos it beats the same network trained from scratch: features learnt on a "
    "large source set transfer to a small target set. The book notes that the copied layers could also be frozen, "
    "but does not run it: the linear probe here trains the new output layer alone on the source's frozen body (its "
    "BatchNorm statistics frozen too; the real profile trains the head with the fine-tune's recipe for it), so the "
    "book has no number for it.",
    numbers=(Number("fine-tune: test accuracy", "metrics/hotdog.json:finetune.test_acc", 0.940),
             Number("fine-tune: train accuracy, last epoch", "metrics/hotdog/finetune.json:train_acc", 0.909),
             Number("fine-tune: train loss, last epoch", "metrics/hotdog/finetune.json:train_loss", 0.242),
             Number("scratch: test accuracy", "metrics/hotdog.json:scratch.test_acc", 0.850),
             Number("scratch: train accuracy, last epoch", "metrics/hotdog/scratch.json:train_acc", 0.846),
             Number("scratch: train loss, last epoch", "metrics/hotdog/scratch.json:train_loss", 0.352),
             Number("linear probe: test accuracy", "metrics/hotdog.json:probe.test_acc"),
             Number("linear probe: train accuracy, last epoch", "metrics/hotdog/probe.json:train_acc"),
             Number("linear probe: train loss, last epoch", "metrics/hotdog/probe.json:train_loss")),
    effects=(Effect("fine-tuning beats training from scratch on the test images",
                    "metrics/hotdog.json:finetune.test_acc", ">", "metrics/hotdog.json:scratch.test_acc"),),
    pictures=PREDICTION_GRIDS, charts=tuple(CHARTS),
    runs=(f"{EXPERIMENT}/{SOURCE}", *(f"{EXPERIMENT}/{variant}" for variant in VARIANTS))),)

TASK: Task[Hotdog] = Task(
    name="hotdog", profile=Hotdog, title="13.2 fine-tuning",
    stages=(
        fetch_stage(fetch, DATA, "demo | d2l | local",
                    "The hot dog set (book 13.2) into data/hotdog/{train,test}/{hotdog,not-hotdog}/."),
        Stage("pretrain", pretrain,
              "data/models/hotdog/source.pt: the ResNet-18 that `train hotdog --variant finetune` starts from.",
              options=(Option("weights", str, "imagenet | source | none | PATH.pth (default: the active profile's "
                                              "weights)", key="weights"),),
              params=(*RUN_COMMON, "weights", "pretrain", "transforms"),
              **run_files(EXPERIMENT, SOURCE, ("model",)), tracked=True),
        Stage("train", train, "Fine-tune vs scratch vs linear probe on the hot dog set (book 13.2).",
              variants=VARIANTS, variant_help="finetune: from the source model, new head at 10x lr; scratch: random "
              "init, one lr; probe: the linear probe, the source's body frozen, only the new head trained",
              recipe="{variant}", deps=(DATA,), variant_deps={v: (SOURCE_MODEL,) for v in PRETRAINED},
              params=(*RUN_COMMON, *DATA_PARAMS, "transforms", "{variant}"),
              variant_params={v: ("weights",) for v in PRETRAINED}, **run_files(EXPERIMENT), tracked=True),
        Stage("evaluate", evaluate,
              "metrics/hotdog.json: test accuracy of fine-tune, scratch and linear probe, and their prediction grids.",
              deps=(DATA, *(_file(variant, "model") for variant in VARIANTS), *HISTORIES),
              params=("common.device", "common.precision", "common.num_workers", "data.on_corrupt", "transforms",
                      "grid_images"),
              outs=(_file("", "reports", "curves.png"), *PREDICTION_GRIDS,
                    *(_rel(predictions_file(Path(), variant)) for variant in VARIANTS)),
              metrics=(_rel(metrics_file(Path())),), tracked=True),
    ),
    charts=CHARTS,
    report=REPORT,
)
