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

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from cvflow.console import info
from cvflow.errors import UserError
from cvflow.params import Params

# Each stage imports what it alone needs inside its function: `fetch hotdog` then depends on the
# data code only, and training code changes leave the fetched data up to date (tests/test_dvc_deps.py).

EXPERIMENT = "hotdog"
VARIANTS = ("finetune", "scratch")
DATA = "data/hotdog"
SOURCE = "source"  # the run (and model file) the fine-tune starts from


def run_paths(root: Path, name: str):
    """Files of the run ``name`` (source, finetune, scratch): see :class:`cvflow.engine.run.RunPaths`."""
    from cvflow.engine.run import RunPaths

    return RunPaths(root, EXPERIMENT, name)


def metrics_file(root: Path) -> Path:
    return root / "metrics" / "hotdog.json"


def _image_sets(params: Params, root: Path):
    from cvflow.data.readers.images import classification_transforms

    cfg = params.task("hotdog")
    train_tf, test_tf = classification_transforms(cfg.transforms)
    return (_images(params, root / DATA / "train", train_tf), _images(params, root / DATA / "test", test_tf))


def _images(params: Params, folder: Path, transform):
    """One split as an image folder, cached as ``common.image_cache`` says (no effect on results)."""
    from cvflow.data.readers.hotdog import CLASSES
    from cvflow.data.readers.images import DecodedImageFolder

    common = params.common
    return DecodedImageFolder(folder, CLASSES, transform, params.task("hotdog").data.on_corrupt,
                              cache=common.image_cache, cache_max_bytes=common.image_cache_mb * 2**20)


# ----------------------------------------------------------------------------- stages


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.hotdog import fetch_hotdog

    cfg = params.task("hotdog")
    source = source or cfg.data.source
    path = path or cfg.data.path
    if source == "local" and path is None:
        raise UserError("source local needs --path DIR_OR_ARCHIVE (e.g. ../shared/data/hotdog)")
    return fetch_hotdog(root / DATA, source, path=path, hub_url=params.common.hub_url, demo=cfg.demo,
                        downloads=root / "data" / "downloads")


class _TensorImages(Dataset):
    """uint8 NHWC images in memory with a transform (the generated source set)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images.permute(0, 3, 1, 2).contiguous(), labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), self.labels[index]


def _source_run(params: Params, root: Path):
    """The demo's stand-in for ImageNet: a ResNet-18 trained on a generated 10-class food set."""
    import numpy as np
    from torchvision.transforms import v2

    from cvflow.data.twins.food import FOOD_CLASSES, render_batch
    from cvflow.engine import ClassificationTask
    from cvflow.engine.run import RunSpec
    from cvflow.models.resnet import build_resnet18

    cfg = params.task("hotdog")
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
    return RunSpec(
        experiment=EXPERIMENT, name=SOURCE, paths=run_paths(root, SOURCE),
        arch="resnet18", arch_kwargs={"num_classes": len(FOOD_CLASSES)},
        build=lambda: build_resnet18(len(FOOD_CLASSES)),
        task=ClassificationTask(),
        train_set=_TensorImages(images[kept], labels[kept], train_tf),
        eval_set=_TensorImages(images[held], labels[held], v2.Compose(norm)),
        recipe=pre.recipe,
        config={"stage": "pretrain", "pretrain": pre.model_dump(mode="json"), "seed": params.common.seed,
                "transforms": cfg.transforms.model_dump(mode="json")},
        inputs={},  # generated in memory from the seeds in config
        classes=FOOD_CLASSES, tags={"stage": "pretrain-hotdog"}, meta={"origin": "source"},
        title="hot dog: source pretraining on generated food")


def pretrain(params: Params, root: Path) -> Path:
    """Write the fine-tune's starting weights to ``data/models/hotdog/source.pt``, and what they are to
    ``metrics/hotdog/source.json`` (the source run's last epoch, or only the origin of given weights)."""
    from cvflow.engine import seed_everything
    from cvflow.engine.run import train_run
    from cvflow.fileio import write_json
    from cvflow.models.files import save_model
    from cvflow.models.resnet import IMAGENET_WEIGHTS, build_resnet18, imagenet_state_dict, load_backbone, read_state_dict

    cfg = params.task("hotdog")
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
        save_model(path, model, "resnet18", {"num_classes": 1000}, IMAGENET_WEIGHTS.meta["categories"],
                   {"origin": "imagenet"})
    elif cfg.weights == "none":
        seed_everything(params.common.seed)
        save_model(path, build_resnet18(1000), "resnet18", {"num_classes": 1000}, [str(i) for i in range(1000)],
                   {"origin": "none"})
    else:
        state = read_state_dict(Path(cfg.weights), setting)
        num = state["fc.weight"].shape[0] if "fc.weight" in state else 1000
        model = build_resnet18(num)
        load_backbone(model, state, f"{setting}: {cfg.weights}")
        save_model(path, model, "resnet18", {"num_classes": num}, [str(i) for i in range(num)],
                   {"origin": Path(cfg.weights).name})
    origin = cfg.weights if cfg.weights in ("imagenet", "none") else Path(cfg.weights).name
    write_json(paths.metrics, {"origin": origin, "epoch": 0})  # given weights: nothing trained here
    info(f"source model ({cfg.weights}) written to {path}")
    return path


def train(params: Params, root: Path, variant: str) -> dict:
    """Fine-tune the source model, or train from scratch (book 13.2), as one tracked run."""
    from cvflow.data.readers.hotdog import CLASSES
    from cvflow.engine import ClassificationTask, head_and_body
    from cvflow.engine.run import RunSpec, train_run
    from cvflow.fileio import sha1sum
    from cvflow.models.files import load_model
    from cvflow.models.resnet import build_resnet18, load_backbone, replace_head
    from cvflow.pipelines.lineage import dvc_digests

    if variant not in VARIANTS:
        raise UserError(f"--variant {variant!r}: use one of {', '.join(VARIANTS)}")
    cfg = params.task("hotdog")
    recipe = getattr(cfg, variant)
    source_file = run_paths(root, SOURCE).model
    config = {"variant": variant, "recipe": recipe.model_dump(mode="json"), "seed": params.common.seed,
              "transforms": cfg.transforms.model_dump(mode="json"), "data": cfg.data.model_dump(mode="json"),
              "demo": cfg.demo.model_dump(mode="json")}
    if variant == "finetune":
        if not source_file.exists():
            raise UserError(f"{source_file}: missing; run `cvflow pretrain hotdog` first")
        config.update(source_sha1=sha1sum(source_file), weights=cfg.weights)

        def build() -> nn.Module:  # the source's body, a new head (the book's finetune_net)
            model = build_resnet18(len(CLASSES))
            load_backbone(model, load_model(source_file)[0].state_dict(), str(source_file))
            replace_head(model, len(CLASSES))
            return model

        def groups(model: nn.Module) -> list[dict]:  # the book's params_1x, and the head at head_lr_mult x
            head, body = head_and_body(model, model.fc)
            return [{"params": body}, {"params": head, "lr_mult": recipe.optim.head_lr_mult}]
    else:
        def build() -> nn.Module:
            return build_resnet18(len(CLASSES))

        groups = None
    train_set, test_set = _image_sets(params, root)
    result = train_run(RunSpec(
        experiment=EXPERIMENT, name=variant, paths=run_paths(root, variant),
        arch="resnet18", arch_kwargs={"num_classes": len(CLASSES)}, build=build, groups=groups,
        task=ClassificationTask(), train_set=train_set, eval_set=test_set, recipe=recipe, config=config,
        inputs={"hotdog": root / DATA}, input_digests={"hotdog": dvc_digests(root, DATA).get(DATA, "")},
        classes=CLASSES, tags={"stage": f"train-hotdog-{variant}", "variant": variant},
        meta={"variant": variant}, title=f"hot dog: {variant}"), params)
    if result.dist.is_main:
        info(f"{variant}: test accuracy {result.final.get('test_acc', float('nan')):.3f} after "
             f"{len(result.history)} epochs")
    return result.final


@torch.inference_mode()
def evaluate(params: Params, root: Path) -> dict:
    """Test both models on ``common.device``; write ``metrics/hotdog.json`` and labelled prediction grids."""
    import pandas as pd

    from cvflow.data.readers.hotdog import CLASSES
    from cvflow.data.readers.images import classification_transforms
    from cvflow.engine import Precision, make_loader, resolve_device, use_pin_memory
    from cvflow.engine.run import resolve_workers
    from cvflow.fileio import sha1sum, write_json
    from cvflow.models.files import load_model
    from cvflow.plots import prediction_grid, training_curves
    from cvflow.tracking import find_run

    cfg = params.task("hotdog")
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
        for images, _ in loader:
            with precision.autocast():
                preds.append(model(images.to(device, non_blocking=True)).argmax(dim=1))
        pred = torch.cat(preds).cpu()  # one host copy for the whole test set
        correct = pred == labels
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
    training_curves(histories, reports / "curves.png", "hot dog: fine-tune vs scratch")
    info(f"hot dog test accuracy: fine-tune {results['finetune']['test_acc']:.3f}, "
         f"scratch {results['scratch']['test_acc']:.3f}")
    return results
