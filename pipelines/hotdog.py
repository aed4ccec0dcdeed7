"""Hot dog fine-tuning (book 13.2): a pretrained ResNet-18 fine-tuned against training from scratch.

Stages (see ``dvc.yaml``)::

    fetch hotdog  ->  data/hotdog/{train,test}/{hotdog,not-hotdog}/*.jpg
    pretrain hotdog -> data/models/hotdog/source.pt   (the fine-tune's starting weights)
    train hotdog --variant finetune|scratch -> data/models/hotdog/<variant>.pt, metrics/hotdog/<variant>*.{json,csv}
    evaluate hotdog -> metrics/hotdog.json, data/reports/hotdog/*.png

``weights`` decides what ``pretrain`` produces: ``imagenet`` (torchvision's ImageNet weights),
``source`` (a ResNet-18 pretrained here on a generated multi-class food set, the demo's
stand-in for ImageNet), ``none`` (random) or a ``PATH.pth`` of the user's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset
from torchvision.transforms import v2

from cvflow.console import info
from cvflow.data.sources.download import sha1sum
from cvflow.data.sources.hotdog import CLASSES, fetch_hotdog
from cvflow.data.readers.images import DecodedImageFolder, classification_transforms
from cvflow.engine import (
    ClassificationTask,
    Precision,
    Trainer,
    build_optimizer,
    build_scheduler,
    fingerprint,
    head_and_body,
    init_distributed,
    make_loader,
    resolve_device,
    seed_everything,
    shutdown_distributed,
    use_channels_last,
    use_pin_memory,
)
from cvflow.errors import UserError
from cvflow.fileio import atomic_open, write_json
from cvflow.models.resnet import (
    IMAGENET_WEIGHTS,
    build_resnet18,
    imagenet_state_dict,
    load_backbone,
    load_model,
    read_state_dict,
    replace_head,
    save_model,
)
from cvflow.params import Params
from cvflow.plots import prediction_grid, training_curves
from cvflow.tracking import Tracker, reopen

EXPERIMENT = "hotdog"
VARIANTS = ("finetune", "scratch")


@dataclass(frozen=True)
class Paths:
    """Every file the hot dog pipeline reads or writes, relative to the project folder."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data" / "hotdog"

    @property
    def downloads(self) -> Path:
        return self.root / "data" / "downloads"

    @property
    def source_model(self) -> Path:
        return self.root / "data" / "models" / "hotdog" / "source.pt"

    def model(self, variant: str) -> Path:
        return self.root / "data" / "models" / "hotdog" / f"{variant}.pt"

    def checkpoint(self, variant: str) -> Path:
        return self.root / "data" / "checkpoints" / "hotdog" / f"{variant}.pt"

    def train_metrics(self, variant: str) -> Path:
        return self.root / "metrics" / "hotdog" / f"{variant}.json"

    def history(self, variant: str) -> Path:
        return self.root / "metrics" / "hotdog" / f"{variant}_history.csv"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics" / "hotdog.json"

    @property
    def reports(self) -> Path:
        return self.root / "data" / "reports" / "hotdog"


# ----------------------------------------------------------------------------- helpers


def _runtime(params: Params):
    common = params.common
    device = resolve_device(common.device)
    dist_info = init_distributed(device)
    seed_everything(common.seed + dist_info.rank)
    return device, dist_info


def _loaders(params: Params, paths: Paths, batch_size: int, dist_info, device):
    cfg = params.task("hotdog")
    train_tf, test_tf = classification_transforms(cfg.transforms)
    train_set = DecodedImageFolder(paths.data / "train", CLASSES, train_tf, cfg.data.on_corrupt)
    test_set = DecodedImageFolder(paths.data / "test", CLASSES, test_tf, cfg.data.on_corrupt)
    kwargs = dict(dist_info=dist_info, seed=params.common.seed, num_workers=params.common.num_workers,
                  pin_memory=use_pin_memory(device, params.common.pin_memory))
    return (make_loader(train_set, batch_size, train=True, **kwargs),
            make_loader(test_set, batch_size, train=False, **kwargs))


def _write_history(path: Path, history: list[dict]) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        pd.DataFrame(history).to_csv(handle, index=False)


def _run(trainer: Trainer, tracker: Tracker, train_loader, test_loader, params_to_log: dict, tags: dict):
    """Resume-aware fit with MLflow: reopen the checkpoint's run, log each epoch exactly once."""
    extra = trainer.resume() or {}
    run_id = tracker.start(extra.get("mlflow_run_id"), tags=tags)
    tracker.log_params(params_to_log)
    if trainer.history:
        tracker.reconcile(trainer.history)
    history = trainer.fit(train_loader, test_loader, callbacks=[tracker], extra={"mlflow_run_id": run_id})
    return history, run_id


def _params_to_log(params: Params, section: dict) -> dict:
    return {"profile": params.profile, "common": params.common.model_dump(mode="json"), **section}


# ----------------------------------------------------------------------------- stages


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    cfg = params.task("hotdog")
    paths = Paths(root)
    source = source or cfg.data.source
    path = path or cfg.data.path
    if source == "local" and path is None:
        raise UserError("source local needs --path DIR_OR_ARCHIVE (e.g. ../shared/data/hotdog)")
    return fetch_hotdog(paths.data, source, path=path, hub_url=params.common.hub_url, demo=cfg.demo,
                        downloads=paths.downloads)


class _TensorImages(Dataset):
    """uint8 NHWC images in memory with a transform (the generated source set)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images.permute(0, 3, 1, 2).contiguous(), labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), self.labels[index]


def _pretrain_on_source(params: Params, paths: Paths) -> tuple[nn.Module, dict]:
    """Pretrain a ResNet-18 on the generated multi-class food set (the demo's ImageNet)."""
    import numpy as np

    from cvflow.data.twins.food import FOOD_CLASSES, render_batch

    cfg = params.task("hotdog")
    pre = cfg.pretrain
    device, dist_info = _runtime(params)
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
    train_set = _TensorImages(images[kept], labels[kept], train_tf)
    test_set = _TensorImages(images[held], labels[held], v2.Compose(norm))
    kwargs = dict(dist_info=dist_info, seed=params.common.seed, num_workers=params.common.num_workers,
                  pin_memory=use_pin_memory(device, params.common.pin_memory))
    recipe = pre.recipe
    model = build_resnet18(len(FOOD_CLASSES))
    optimizer = build_optimizer([{"params": model.parameters()}], recipe.optim)
    config = {"stage": "pretrain", "pretrain": pre.model_dump(mode="json"), "seed": params.common.seed,
              "transforms": cfg.transforms.model_dump(mode="json")}
    train_loader = make_loader(train_set, recipe.batch_size, train=True, **kwargs)
    test_loader = make_loader(test_set, recipe.batch_size, train=False, **kwargs)
    scheduler = build_scheduler(optimizer, recipe.optim, recipe.epochs, len(train_loader))
    trainer = Trainer(model, ClassificationTask(), optimizer, recipe.epochs, device, paths.checkpoint("source"),
                      fingerprint(config), scheduler=scheduler,
                      precision=Precision.resolve(device, params.common.precision),
                      channels_last=use_channels_last(device, params.common.channels_last),
                      dist_info=dist_info, description="pretrain source")
    tracker = Tracker(paths.root, EXPERIMENT, "source-pretrain") if dist_info.is_main else None
    if tracker:
        history, run_id = _run(trainer, tracker, train_loader, test_loader,
                               _params_to_log(params, {"pretrain": config}), {"stage": "pretrain"})
        tracker.end()
    else:
        trainer.resume()
        history, run_id = trainer.fit(train_loader, test_loader), None
    meta = {"origin": "source", "history": history, "mlflow_run_id": run_id}
    return model, {"classes": list(FOOD_CLASSES), "meta": meta, "trainer": trainer, "dist": dist_info}


def pretrain(params: Params, root: Path) -> Path:
    """Write the fine-tune's starting weights to ``data/models/hotdog/source.pt``."""
    cfg = params.task("hotdog")
    paths = Paths(root)
    setting = f"hotdog.{params.profile}.weights"
    if cfg.weights == "source":
        model, out = _pretrain_on_source(params, paths)
        if out["dist"].is_main:
            save_model(paths.source_model, model, out["classes"], out["meta"])
            out["trainer"].discard_checkpoint()
        shutdown_distributed()
    elif cfg.weights == "imagenet":
        model = build_resnet18(1000)
        model.load_state_dict(imagenet_state_dict(setting))
        save_model(paths.source_model, model, IMAGENET_WEIGHTS.meta["categories"], {"origin": "imagenet"})
    elif cfg.weights == "none":
        seed_everything(params.common.seed)
        save_model(paths.source_model, build_resnet18(1000), [str(i) for i in range(1000)], {"origin": "none"})
    else:
        state = read_state_dict(Path(cfg.weights), setting)
        num = state["fc.weight"].shape[0] if "fc.weight" in state else 1000
        model = build_resnet18(num)
        load_backbone(model, state, f"{setting}: {cfg.weights}")
        save_model(paths.source_model, model, [str(i) for i in range(num)], {"origin": str(cfg.weights)})
    info(f"source model ({cfg.weights}) written to {paths.source_model}")
    return paths.source_model


def train(params: Params, root: Path, variant: str) -> dict:
    """Fine-tune the source model, or train from scratch; write model, metrics, history, curves."""
    if variant not in VARIANTS:
        raise UserError(f"--variant {variant!r}: use one of {', '.join(VARIANTS)}")
    cfg = params.task("hotdog")
    paths = Paths(root)
    recipe = getattr(cfg, variant)
    device, dist_info = _runtime(params)
    model = build_resnet18(len(CLASSES))
    config = {"variant": variant, "recipe": recipe.model_dump(mode="json"), "seed": params.common.seed,
              "transforms": cfg.transforms.model_dump(mode="json"), "data": cfg.data.model_dump(mode="json"),
              "demo": cfg.demo.model_dump(mode="json")}
    if variant == "finetune":
        if not paths.source_model.exists():
            raise UserError(f"{paths.source_model}: missing; run `cvflow pretrain hotdog` first")
        source, _ = load_model(paths.source_model)
        load_backbone(model, source.state_dict(), str(paths.source_model))
        head = replace_head(model, len(CLASSES))
        head_params, body_params = head_and_body(model, head)
        groups = [{"params": body_params}, {"params": head_params, "lr_mult": recipe.optim.head_lr_mult}]
        config["source_sha1"] = sha1sum(paths.source_model)
        config["weights"] = cfg.weights
    else:
        groups = [{"params": model.parameters()}]
    optimizer = build_optimizer(groups, recipe.optim)
    train_loader, test_loader = _loaders(params, paths, recipe.batch_size, dist_info, device)
    trainer = Trainer(model, ClassificationTask(), optimizer, recipe.epochs, device, paths.checkpoint(variant),
                      fingerprint(config),
                      scheduler=build_scheduler(optimizer, recipe.optim, recipe.epochs, len(train_loader)),
                      precision=Precision.resolve(device, params.common.precision),
                      channels_last=use_channels_last(device, params.common.channels_last),
                      dist_info=dist_info, description=variant)
    if not dist_info.is_main:
        trainer.resume()
        trainer.fit(train_loader, test_loader)
        shutdown_distributed()
        return {}
    tracker = Tracker(root, EXPERIMENT, variant)
    history, run_id = _run(trainer, tracker, train_loader, test_loader,
                           _params_to_log(params, {"run": config}),
                           {"stage": f"train-{variant}", "profile": params.profile, "variant": variant,
                            "device": str(device), "precision": trainer.precision.name,
                            "world_size": str(dist_info.world_size)})
    final = {k: v for k, v in history[-1].items()}
    save_model(paths.model(variant), model, CLASSES, {"variant": variant, "mlflow_run_id": run_id,
                                                      "history": history})
    write_json(paths.train_metrics(variant), final)
    _write_history(paths.history(variant), history)
    curve = training_curves({variant: history}, paths.reports / f"{variant}_curves.png", f"hot dog: {variant}")
    tracker.log_artifact(curve, "plots")
    tracker.log_artifact(paths.train_metrics(variant), "metrics")
    tracker.log_artifact(paths.model(variant), "model")
    tracker.end()
    trainer.discard_checkpoint()
    shutdown_distributed()
    info(f"{variant}: test accuracy {final.get('test_acc', float('nan')):.3f} after {len(history)} epochs")
    return final


@torch.inference_mode()
def evaluate(params: Params, root: Path) -> dict:
    """Test both models; write ``metrics/hotdog.json`` and labelled prediction grids."""
    cfg = params.task("hotdog")
    paths = Paths(root)
    device = resolve_device(params.common.device)
    _, test_tf = classification_transforms(cfg.transforms)
    test_set = DecodedImageFolder(paths.data / "test", CLASSES, test_tf, cfg.data.on_corrupt)
    loader = make_loader(test_set, 256, train=False, num_workers=params.common.num_workers)
    labels = test_set.targets
    # the grid: the first images of each class, alternating, so both classes show
    per_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(len(CLASSES))]
    grid_idx = [i for pair in zip(*per_class) for i in pair][: cfg.grid_images]
    results: dict = {}
    precision = Precision.resolve(device, params.common.precision)
    for variant in VARIANTS:
        model, data = load_model(paths.model(variant))
        model.to(device).eval()
        preds = []
        for images, _ in loader:
            with precision.autocast():
                preds.append(model(images.to(device)).argmax(dim=1).cpu())
        pred = torch.cat(preds)
        correct = pred == labels
        per_class_acc = {CLASSES[c]: correct[labels == c].float().mean().item() for c in range(len(CLASSES))}
        results[variant] = {"test_acc": correct.float().mean().item(),
                            **{f"test_acc_{k.replace('-', '_')}": v for k, v in per_class_acc.items()}}
        grid = prediction_grid([test_set.images[i] for i in grid_idx], [CLASSES[int(pred[i])] for i in grid_idx],
                               [CLASSES[int(labels[i])] for i in grid_idx],
                               paths.reports / f"{variant}_predictions.png",
                               title=f"hot dog {variant}: test accuracy {results[variant]['test_acc']:.3f}")
        tracker = reopen(root, data["meta"].get("mlflow_run_id", "")) if data["meta"].get("mlflow_run_id") else None
        if tracker is not None:
            tracker.log_metrics({f"eval_{k}": v for k, v in results[variant].items()})
            tracker.log_artifact(grid, "plots")
    results["finetune_minus_scratch"] = results["finetune"]["test_acc"] - results["scratch"]["test_acc"]
    results["test_images"] = len(test_set)
    write_json(paths.metrics, results)
    histories = {}
    for variant in VARIANTS:
        history_file = paths.history(variant)
        if history_file.exists():
            histories[variant] = pd.read_csv(history_file).to_dict("records")
    training_curves(histories, paths.reports / "curves.png", "hot dog: fine-tune vs scratch")
    info(f"hot dog test accuracy: fine-tune {results['finetune']['test_acc']:.3f}, "
         f"scratch {results['scratch']['test_acc']:.3f}")
    return results
