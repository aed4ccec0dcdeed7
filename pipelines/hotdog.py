"""Hot dog fine-tuning (book 13.2): a pretrained ResNet-18 fine-tuned against training from scratch, and the
linear probe the book discusses but does not run (the pretrained body frozen, only the new head trained).

Stages (see ``dvc.yaml``)::

    fetch hotdog  ->  data/hotdog/{train,test}/{hotdog,not-hotdog}/*.jpg
    pretrain hotdog -> data/models/hotdog/source.pt   (the fine-tune's starting weights)
    train hotdog --variant finetune|scratch|probe -> data/models/hotdog/<variant>.pt, metrics/hotdog/<variant>*.{json,csv}
    evaluate hotdog -> metrics/hotdog.json, data/reports/hotdog/*.png

``weights`` decides what ``pretrain`` produces: ``imagenet`` (torchvision's ImageNet weights),
``source`` (a ResNet-18 pretrained here on a generated multi-class food set, the demo's
stand-in for ImageNet), ``none`` (random) or a ``PATH.pth`` of the user's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from cvflow.console import info
from cvflow.errors import UserError
from cvflow.params import FrozenRecipe, HubData, ImageTransforms, ParamsBase as Params, Recipe, Strict, check_weights
from cvflow.pipelines.task import (DATA_PARAMS, RUN_COMMON, Effect, Number, Option, Section, Stage, Task, curves,
                                   fetch_stage, run_files)


# ----------------------------------------------------------------------------- params schema


class HotdogData(HubData):
    source: Literal["demo", "d2l", "local"] = Field(
        description="demo: generated offline; d2l: the book's data hub (hotdog.zip, SHA-1 checked); "
        "local: a folder or archive you already have (path)"
    )
    on_corrupt: Literal["skip", "error"] = Field(
        "skip", description="what to do with unreadable images: skip them (and list them) or stop"
    )


class HotdogDemo(Strict):
    """Size of the generated hot dog twin (profile demo)."""

    train_per_class: int = Field(150, ge=2, le=100_000)
    test_per_class: int = Field(100, ge=2, le=100_000)
    min_side: int = Field(64, ge=16, le=2048, description="shortest image side, pixels")
    max_side: int = Field(160, ge=16, le=2048, description="longest image side, pixels")
    seed: int = Field(2013, ge=0)

    @model_validator(mode="after")
    def _sides(self) -> "HotdogDemo":
        if self.min_side > self.max_side:
            raise ValueError(f"min_side ({self.min_side}) must not exceed max_side ({self.max_side})")
        return self


class Pretrain(Strict):
    """The demo's source model: a ResNet-18 pretrained on a generated multi-class food set."""

    images_per_class: int = Field(300, ge=2, le=100_000)
    image_size: int = Field(64, ge=16, le=1024)
    recipe: Recipe
    seed: int = Field(1313, ge=0)


class Hotdog(Strict):
    data: HotdogData
    demo: HotdogDemo = HotdogDemo()
    transforms: ImageTransforms
    weights: str = Field(
        description="starting weights of the fine-tune run: imagenet (torchvision ResNet18_Weights.IMAGENET1K_V1) | "
        "source (pretrained by the pipeline on generated data) | none | PATH.pth"
    )
    pretrain: Pretrain
    finetune: Recipe
    scratch: Recipe
    probe: FrozenRecipe = Field(description="the linear probe: the fine-tune's start, its body (freeze) kept as the "
                                "source's, only the new head trained")
    grid_images: int = Field(16, ge=1, le=256, description="test images drawn with predicted and true labels")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        return check_weights(value, ("imagenet", "source", "none"))


# Each stage imports what it alone needs inside its function: `fetch hotdog` then depends on the
# data code only, and training code changes leave the fetched data up to date (tests/test_dvc_deps.py).

EXPERIMENT = "hotdog"
#: the runs compared (each a params field, so one word: ``probe`` is the linear probe)
VARIANTS = ("finetune", "scratch", "probe")
PRETRAINED = ("finetune", "probe")  # the runs that start from the source model's body
DATA = "data/hotdog"
SOURCE = "source"  # the run (and model file) the fine-tune starts from


def run_paths(root: Path, name: str):
    """Files of the run ``name`` (source, finetune, scratch, probe): see :class:`cvflow.engine.run.RunPaths`."""
    from cvflow.engine.paths import RunPaths

    return RunPaths(root, EXPERIMENT, name)


def metrics_file(root: Path) -> Path:
    return root / "metrics" / "hotdog.json"


def predictions_file(root: Path, variant: str) -> Path:
    """Every test image's label and the prediction ``evaluate`` gives it (``file,label,prediction``)."""
    return root / "metrics" / "hotdog" / f"{variant}_test_predictions.csv"


def _image_sets(params: Params, root: Path):
    from cvflow.data.readers.images import classification_transforms

    cfg = TASK.cfg(params)
    train_tf, test_tf = classification_transforms(cfg.transforms)
    return (_images(params, root / DATA / "train", train_tf), _images(params, root / DATA / "test", test_tf))


def _images(params: Params, folder: Path, transform):
    """One split as an image folder, cached as ``common.image_cache`` says (no effect on results)."""
    from cvflow.data.readers.hotdog import CLASSES
    from cvflow.data.readers.images import DecodedImageFolder

    common = params.common
    return DecodedImageFolder(folder, CLASSES, transform, TASK.cfg(params).data.on_corrupt,
                              cache=common.image_cache, cache_max_bytes=common.image_cache_mb * 2**20)


# ----------------------------------------------------------------------------- stages


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.hotdog import fetch_hotdog

    cfg = TASK.cfg(params)
    source = source or cfg.data.source
    path = path or cfg.data.path
    if source == "local" and path is None:
        raise UserError("source local needs --path DIR_OR_ARCHIVE (e.g. ../shared/data/hotdog)")
    return fetch_hotdog(root / DATA, source, path=path, hub_url=params.common.hub_url, demo=cfg.demo,
                        downloads=root / "data" / "downloads")


def _source_run(params: Params, root: Path):
    """The demo's stand-in for ImageNet: a ResNet-18 trained on a generated 10-class food set."""
    import numpy as np
    import torch
    from torchvision.transforms import v2

    from cvflow.data.readers.images import TensorImages
    from cvflow.engine.run import RunSpec
    from cvflow.engine.trainer import ClassificationTask
    from cvflow.models.resnet import build_resnet18
    from cvflow.preprocess import inference_transform
    from cvflow.serving import Servable
    from cvflow.twins.food import FOOD_CLASSES, render_batch

    cfg = TASK.cfg(params)
    pre = cfg.pretrain
    n = pre.images_per_class * len(FOOD_CLASSES)
    kinds = [FOOD_CLASSES[i % len(FOOD_CLASSES)] for i in range(n)]
    info(f"generating the source set: {n} images of {len(FOOD_CLASSES)} food classes at {pre.image_size} px")
    images = torch.from_numpy(render_batch(kinds, pre.seed, (pre.image_size, pre.image_size)))
    labels = torch.tensor([i % len(FOOD_CLASSES) for i in range(n)])
    order = torch.from_numpy(np.random.default_rng(pre.seed).permutation(n))
    held = order[: max(len(FOOD_CLASSES), n // 10)]
    kept = order[len(held):]
    norm = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(cfg.transforms.mean), list(cfg.transforms.std))]
    train_tf = v2.Compose([v2.RandomResizedCrop(pre.image_size, scale=(0.6, 1.0), antialias=True),
                           v2.RandomHorizontalFlip(), *norm])
    test_spec = {"resize": [pre.image_size, pre.image_size], "scale": "unit", "mean": list(cfg.transforms.mean),
                 "std": list(cfg.transforms.std)}
    held_images = images[held].permute(0, 3, 1, 2).contiguous()
    return RunSpec(
        paths=run_paths(root, SOURCE),
        build=lambda: build_resnet18(len(FOOD_CLASSES)),
        task=ClassificationTask(),
        train_set=TensorImages(images[kept].permute(0, 3, 1, 2).contiguous(), labels[kept], train_tf),
        eval_set=TensorImages(held_images, labels[held], inference_transform(test_spec)),
        recipe=pre.recipe,
        config={"stage": "pretrain", "pretrain": pre.model_dump(mode="json"), "seed": params.common.seed,
                "transforms": cfg.transforms.model_dump(mode="json")},
        inputs={},  # generated in memory from the seeds in config
        classes=FOOD_CLASSES, meta={"origin": "source"},
        serve=Servable(f"{EXPERIMENT}-{SOURCE}", "classify", test_spec, [held_images[0]], register=False),
        title="hot dog: source pretraining on generated food")


def pretrain(params: Params, root: Path) -> Path:
    """Write the fine-tune's starting weights to ``data/models/hotdog/source.pt``, and what they are to
    ``metrics/hotdog/source.json`` (the source run's last epoch, or only the origin of given weights)."""
    from cvflow.engine.runtime import seed_everything
    from cvflow.engine.run import train_run
    from cvflow.fileio import write_json
    from cvflow.models.files import save_model
    from cvflow.models.resnet import (IMAGENET_WEIGHTS, build_resnet18, imagenet_state_dict, load_backbone,
                                      read_state_dict)

    cfg = TASK.cfg(params)
    paths = run_paths(root, SOURCE)
    path = paths.model
    setting = f"hotdog.{params.profile}.weights"
    if cfg.weights == "source":
        final = train_run(_source_run(params, root), params).final
        write_json(paths.metrics, {"origin": "source", **final})  # the run wrote it; the origin added
        info(f"source model ({cfg.weights}) written to {path}")
        return path
    if cfg.weights == "imagenet":
        model = build_resnet18(1000)
        model.load_state_dict(imagenet_state_dict(setting))
        save_model(path, model, IMAGENET_WEIGHTS.meta["categories"],
                   {"origin": "imagenet"})
    elif cfg.weights == "none":
        seed_everything(params.common.seed)
        save_model(path, build_resnet18(1000), [str(i) for i in range(1000)],
                   {"origin": "none"})
    else:
        state = read_state_dict(Path(cfg.weights), setting)
        num = state["fc.weight"].shape[0] if "fc.weight" in state else 1000
        model = build_resnet18(num)
        load_backbone(model, state, f"{setting}: {cfg.weights}")
        save_model(path, model, [str(i) for i in range(num)],
                   {"origin": Path(cfg.weights).name})
    origin = cfg.weights if cfg.weights in ("imagenet", "none") else Path(cfg.weights).name
    write_json(paths.metrics, {"origin": origin, "epoch": 0})  # given weights: nothing trained here
    info(f"source model ({cfg.weights}) written to {path}")
    return path


def train(params: Params, root: Path, variant: str) -> dict:
    """Fine-tune the source model, train from scratch (book 13.2), or train only a new head on the source's frozen
    body (the linear probe), as one tracked run."""
    from torch import nn

    from cvflow.data.readers.hotdog import CLASSES
    from cvflow.engine.optim import head_and_body
    from cvflow.engine.trainer import ClassificationTask
    from cvflow.engine.run import train_variant
    from cvflow.fileio import sha1sum
    from cvflow.models.files import load_model
    from cvflow.models.resnet import build_resnet18, load_backbone, replace_head
    from cvflow.data.readers.images import classification_test_spec
    from cvflow.pipelines.lineage import dvc_digests
    from cvflow.serving import Servable

    cfg = TASK.cfg(params)
    recipe = getattr(cfg, variant) if variant in VARIANTS else None  # train_variant refuses another
    source_file = run_paths(root, SOURCE).model
    config = {"transforms": cfg.transforms.model_dump(mode="json"), "data": cfg.data.model_dump(mode="json"),
              "demo": cfg.demo.model_dump(mode="json")}
    if variant in PRETRAINED:
        if not source_file.exists():
            raise UserError(f"{source_file}: missing; run `cvflow pretrain hotdog` first")
        config.update(source_sha1=sha1sum(source_file), weights=cfg.weights)

        def build() -> nn.Module:  # the source's body, a new head (the book's finetune_net)
            model = build_resnet18(len(CLASSES))
            load_backbone(model, load_model(source_file)[0].state_dict(), str(source_file))
            replace_head(model, len(CLASSES))
            return model

        def groups(model: nn.Module) -> list[dict]:  # the book's params_1x, and the head at head_lr_mult x
            head, body = head_and_body(model, model.fc)  # the probe's body is frozen: the engine leaves it out
            return [{"params": body}, {"params": head, "lr_mult": recipe.optim.head_lr_mult}]
    else:
        def build() -> nn.Module:
            return build_resnet18(len(CLASSES))

        groups = None
    train_set, test_set = _image_sets(params, root)
    result = train_variant(
        params, root, EXPERIMENT, variant, VARIANTS, recipe=recipe, data={"hotdog": root / DATA},
        digests={"hotdog": dvc_digests(root, DATA).get(DATA, "")}, config=config, build=build, groups=groups,
        task=ClassificationTask(), train_set=train_set, eval_set=test_set, classes=CLASSES, title=f"hot dog: {variant}",
        freeze=recipe.freeze if isinstance(recipe, FrozenRecipe) else (),
        freeze_key=TASK.override(params.profile, f"{variant}.freeze"),
        serve=Servable(f"{EXPERIMENT}-{variant}", "classify", classification_test_spec(cfg.transforms),
                       [test_set.image(0)]))
    if result.dist.is_main:
        info(f"{variant}: test accuracy {result.final.get('test_acc', float('nan')):.3f} after "
             f"{len(result.history)} epochs")
    return result.final


def evaluate(params: Params, root: Path) -> dict:
    """Test every variant's model on ``common.device``; write ``metrics/hotdog.json`` and labelled prediction grids."""
    import pandas as pd
    import torch

    from cvflow.data.readers.hotdog import CLASSES
    from cvflow.data.readers.images import classification_transforms
    from cvflow.engine.runtime import Precision, resolve_device, use_pin_memory
    from cvflow.engine.trainer import make_loader
    from cvflow.engine.runtime import resolve_workers
    from cvflow.fileio import sha1sum, write_csv, write_json
    from cvflow.models.files import load_model
    import cvflow.models.resnet  # noqa: F401  (registers the architecture the model file names)
    from cvflow.plots import prediction_grid, training_curves
    from cvflow.tracking import find_run

    cfg = TASK.cfg(params)
    device = resolve_device(params.common.device)
    precision = Precision.resolve(device, params.common.precision)
    _, test_tf = classification_transforms(cfg.transforms)
    test_set = _images(params, root / DATA / "test", test_tf)
    loader = make_loader(test_set, 256, train=False, num_workers=resolve_workers(params.common.num_workers, device),
                         pin_memory=use_pin_memory(device, params.common.pin_memory))
    labels = test_set.targets
    # the grid: the first images of each class, alternating, so both classes show
    per_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(len(CLASSES))]
    grid_idx = [i for pair in zip(*per_class) for i in pair][: cfg.grid_images]
    results: dict = {}
    reports = run_paths(root, "finetune").reports
    for variant in VARIANTS:
        model_file = run_paths(root, variant).model
        model, data = load_model(model_file)
        model.to(device).eval()
        preds = []
        with torch.inference_mode():
            for images, _ in loader:
                with precision.autocast():
                    preds.append(model(images.to(device, non_blocking=True)).argmax(dim=1))
        pred = torch.cat(preds).cpu()  # one host copy for the whole test set
        correct = pred == labels
        # every test image's label as evaluated: what the served model must answer for the same file
        write_csv(predictions_file(root, variant),
                  [{"file": path.relative_to(root / DATA / "test").as_posix(), "label": CLASSES[int(t)],
                    "prediction": CLASSES[int(p)]} for path, t, p in zip(test_set.paths, labels, pred)])
        per_class_acc = {CLASSES[c]: correct[labels == c].float().mean().item() for c in range(len(CLASSES))}
        results[variant] = {"test_acc": correct.float().mean().item(),
                            **{f"test_acc_{k.replace('-', '_')}": v for k, v in per_class_acc.items()}}
        grid = prediction_grid([test_set.images[i] for i in grid_idx], [CLASSES[int(pred[i])] for i in grid_idx],
                               [CLASSES[int(labels[i])] for i in grid_idx], reports / f"{variant}_predictions.png",
                               title=f"hot dog {variant}: test accuracy {results[variant]['test_acc']:.3f}")
        tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
        if tracker is not None:
            tracker.log_evaluation(results[variant], step=int(data["meta"].get("epochs", 0)))
            tracker.log_artifact(grid, "plots")
    results["finetune_minus_scratch"] = results["finetune"]["test_acc"] - results["scratch"]["test_acc"]
    results["test_images"] = len(test_set)
    write_json(metrics_file(root), results)
    histories = {variant: pd.read_csv(run_paths(root, variant).history).to_dict("records")
                 for variant in VARIANTS if run_paths(root, variant).history.exists()}
    training_curves(histories, reports / "curves.png", "hot dog: fine-tune vs scratch vs linear probe")
    info("hot dog test accuracy: " + ", ".join(f"{variant} {results[variant]['test_acc']:.3f}" for variant in VARIANTS))
    return results


# ----------------------------------------------------------------------------- the declaration

#: the comparison charts (dvc.yaml's top-level plots; static copies in the report)
HISTORIES = tuple(f"metrics/{EXPERIMENT}/{variant}_history.csv" for variant in VARIANTS)
CHARTS = {
    "hotdog test accuracy per epoch": curves(*HISTORIES, y="test_acc"),
    "hotdog training loss per epoch": curves(*HISTORIES, y="train_loss"),
}
PREDICTION_GRIDS = tuple(f"data/reports/{EXPERIMENT}/{variant}_predictions.png" for variant in VARIANTS)

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
    name="hotdog", module=__name__, profile=Hotdog, title="13.2 fine-tuning",
    stages=(
        fetch_stage(DATA, "demo | d2l | local",
                    "The hot dog set (book 13.2) into data/hotdog/{train,test}/{hotdog,not-hotdog}/."),
        Stage("pretrain", "pretrain",
              "data/models/hotdog/source.pt: the ResNet-18 that `train hotdog --variant finetune` starts from.",
              options=(Option("weights", str, "imagenet | source | none | PATH.pth (default: the active profile's "
                                              "weights)", key="weights"),),
              params=(*RUN_COMMON, "weights", "pretrain", "transforms"),
              outs=("data/models/hotdog/source.pt",), metrics=("metrics/hotdog/source.json",), tracked=True),
        Stage("train", "train", "Fine-tune vs scratch vs linear probe on the hot dog set (book 13.2).",
              variants=VARIANTS, variant_help="finetune: from the source model, new head at 10x lr; scratch: random "
              "init, one lr; probe: the linear probe, the source's body frozen, only the new head trained",
              recipe="{variant}", deps=(DATA,), variant_deps={v: ("data/models/hotdog/source.pt",) for v in PRETRAINED},
              params=(*RUN_COMMON, *DATA_PARAMS, "transforms", "{variant}"),
              variant_params={v: ("weights",) for v in PRETRAINED}, **run_files(EXPERIMENT), tracked=True),
        Stage("evaluate", "evaluate",
              "metrics/hotdog.json: test accuracy of fine-tune, scratch and linear probe, and their prediction grids.",
              deps=(DATA, *(f"data/models/{EXPERIMENT}/{variant}.pt" for variant in VARIANTS), *HISTORIES),
              params=("common.device", "common.precision", "common.num_workers", "data.on_corrupt", "transforms",
                      "grid_images"),
              outs=("data/reports/hotdog/curves.png", *PREDICTION_GRIDS,
                    *(f"metrics/{EXPERIMENT}/{variant}_test_predictions.csv" for variant in VARIANTS)),
              metrics=("metrics/hotdog.json",), tracked=True),
    ),
    charts=CHARTS,
    report=REPORT,
)
